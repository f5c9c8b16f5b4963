//! `--web [ADDR]` (SPEC chapter 9): a live page of the running system, served by axum on
//! its own thread with its own single-threaded tokio runtime, so the master's loop stays
//! the one thread that owns the run.
//!
//! The master publishes: after every command a state object (nodes, channels,
//! transactions, snapshots), every stdout and stderr line, every trace event (the diagram
//! is drawn from them with [`crate::draw`]). The page learns of changes through
//! Server-Sent Events: one `state` event per change, coalesced (a `watch` channel keeps
//! only the newest), so a busy run sends the page the latest state, not a backlog. What
//! the page asks for (a command line, a step) comes back to the master as a [`Request`]
//! and goes through the same parser as a file's lines. Standard input's lines come to the
//! master on the same channel ([`Web::sender`]), so that one blocking wait takes lines
//! from both in the order they come.
//!
//! Every request must carry the run's token (`?token=` or an `x-bank-token` header) and a
//! `Host` that names this server (an IP literal or `localhost` with its port; a browser
//! sends a foreign name only after DNS rebinding); an `Origin`, when sent, must be this
//! server. Anything else is refused with 403 and logged.

use axum::body::Bytes;
use axum::extract::{Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use crossbeam_channel::{Receiver, Sender};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_stream::StreamExt;

/// What the page asks the master to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run one line of the command language.
    Line(String),
    /// Run the next line of the file (`--step`).
    Step,
    /// Run a line of standard input (typed at the prompt, or piped); not from the page.
    Stdin(String),
    /// Standard input has ended (Ctrl-D, or a piped file's end): the page goes on.
    StdinEnded,
    /// Ctrl-C at the prompt: the session ends.
    Interrupted,
}

/// Lines of output kept for the page (older ones are dropped from the page, not from
/// stdout).
const OUTPUT_KEPT: usize = 400;

#[derive(Default)]
struct Published {
    version: u64,
    /// The master's last state object.
    state: serde_json::Map<String, serde_json::Value>,
    /// stdout and stderr lines, newest last, as (is_error, text).
    output: std::collections::VecDeque<(bool, String)>,
    /// Every line run, in order: the session as a command file.
    log: Vec<String>,
    /// Trace events, one JSON object per line.
    trace: String,
    trace_events: usize,
    /// The diagram drawn for `trace_events` events.
    svg: Option<(usize, Arc<String>)>,
    ended: bool,
}

struct Shared {
    token: String,
    port: u16,
    published: Mutex<Published>,
    changed: tokio::sync::watch::Sender<u64>,
    /// Set when the session ends: the server answers what it has begun, ends the event
    /// streams, and stops.
    stop: tokio::sync::watch::Sender<bool>,
    requests: Sender<Request>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The live page's server, as the master holds it.
pub struct Web {
    shared: Arc<Shared>,
    requests: Receiver<Request>,
    url: String,
    /// Batched changes not yet announced to the page.
    dirty: bool,
    /// When a load's progress was last announced.
    progressed: Option<std::time::Instant>,
    /// Signalled when the server thread has stopped.
    done: Receiver<()>,
}

/// A fresh token: 128 bits from the system's random source.
fn token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Web {
    /// Binds `addr` (`127.0.0.1:0` when `None`: a free port on this machine only) and
    /// starts serving.
    ///
    /// # Errors
    /// The address does not parse or cannot be bound.
    pub fn start(addr: Option<&str>) -> Result<Web, String> {
        let addr = addr.unwrap_or("127.0.0.1:0");
        let parsed: SocketAddr = match addr.parse() {
            Ok(a) => a,
            // A bare IP means a free port on it.
            Err(_) => match addr.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 0),
                Err(_) => {
                    return Err(format!(
                        "--web {addr}: not an address (give IP:PORT, e.g. 127.0.0.1:8080, or an IP)"
                    ))
                }
            },
        };
        let listener =
            TcpListener::bind(parsed).map_err(|e| format!("--web {addr}: cannot listen: {e}"))?;
        let local = listener.local_addr().map_err(|e| format!("--web {addr}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("--web {addr}: {e}"))?;
        let token = token().map_err(|e| format!("--web: cannot make a token: {e}"))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let (changed, _) = tokio::sync::watch::channel(0);
        let (stop, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            token: token.clone(),
            port: local.port(),
            published: Mutex::new(Published::default()),
            changed,
            stop,
            requests: tx,
        });
        let host = match local.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let url = format!("http://{host}:{}/?token={token}", local.port());
        let serving = shared.clone();
        let (done_tx, done) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("web".into())
            .spawn(move || {
                serve(listener, serving);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("--web: cannot start the server thread: {e}"))?;
        Ok(Web { shared, requests: rx, url, dirty: false, progressed: None, done })
    }

    /// The page's address, token included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A sender of requests that do not come from the page (standard input's lines): they
    /// wake [`Web::next_request`] as the page's do, in the order they are sent.
    pub fn sender(&self) -> Sender<Request> {
        self.shared.requests.clone()
    }

    /// Waits for the next request; `None` if the server is gone.
    pub fn next_request(&mut self) -> Option<Request> {
        self.announce();
        self.requests.recv().ok()
    }

    /// Records a line the session ran (the downloadable command file).
    pub fn ran(&mut self, line: &str) {
        self.shared.lock().log.push(line.to_string());
        self.dirty = true;
    }

    /// Records an stdout (`error` false) or stderr line.
    pub fn output(&mut self, line: &str, error: bool) {
        let mut p = self.shared.lock();
        p.output.push_back((error, line.trim_end_matches('\n').to_string()));
        while p.output.len() > OUTPUT_KEPT {
            p.output.pop_front();
        }
        self.dirty = true;
    }

    /// Records a trace event (one JSON object).
    pub fn trace(&mut self, json: &str) {
        let mut p = self.shared.lock();
        p.trace.push_str(json);
        p.trace.push('\n');
        p.trace_events += 1;
        self.dirty = true;
    }

    /// Replaces the master's state object and tells the page.
    pub fn publish(&mut self, state: serde_json::Map<String, serde_json::Value>) {
        self.shared.lock().state = state;
        self.dirty = true;
        self.announce();
    }

    /// A running `Load`'s progress: `done` of `of` operations. Announced at most five
    /// times a second, so that a load of millions costs the page a few updates.
    pub fn progress(&mut self, done: u64, of: u64) {
        let now = std::time::Instant::now();
        if self.progressed.is_some_and(|t| now - t < std::time::Duration::from_millis(200)) {
            return;
        }
        self.progressed = Some(now);
        self.shared.lock().state.insert("load".into(), serde_json::json!({"done": done, "of": of}));
        self.dirty = true;
        self.announce();
    }

    /// Marks the session over and stops the server once it has answered the requests it
    /// has begun (the `KillAll` that ended the session among them): the process may exit
    /// right after. A server that takes longer than 5 s is left to die with the process.
    pub fn end(&mut self) {
        self.shared.lock().ended = true;
        self.dirty = true;
        self.announce();
        let _ = self.shared.stop.send(true);
        if self.done.recv_timeout(std::time::Duration::from_secs(5)).is_err() {
            log::warn!("web: the server did not stop within 5 s");
        }
    }

    fn announce(&mut self) {
        if self.dirty {
            self.dirty = false;
            let v = {
                let mut p = self.shared.lock();
                p.version += 1;
                p.version
            };
            let _ = self.shared.changed.send(v);
        }
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("web: cannot start the runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("web: {e}");
                return;
            }
        };
        let app = Router::new()
            .route("/", get(page))
            .route("/events", get(events))
            .route("/api/state", get(state))
            .route("/api/log", get(session_log))
            .route("/api/command", post(command))
            .route("/api/step", post(step))
            .route("/diagram.svg", get(diagram))
            .layer(middleware::from_fn_with_state(shared.clone(), guard))
            .with_state(shared.clone());
        let shared_stop = shared.stop.subscribe();
        let mut stop = shared_stop;
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
            log::error!("web: the server stopped: {e}");
        }
    });
}

/// Whether `host` (a `Host` header, or an `Origin`'s authority) names this server.
fn our_host(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else { return false };
    if p.parse() != Ok(port) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Why a request is refused, if it is.
fn refusal(
    headers: &HeaderMap,
    query: Option<&str>,
    token: &str,
    port: u16,
) -> Option<&'static str> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !our_host(host, port) {
        return Some("foreign Host");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let ok = origin.strip_prefix("http://").is_some_and(|o| our_host(o, port));
        if !ok {
            return Some("foreign Origin");
        }
    }
    let given =
        headers.get("x-bank-token").and_then(|h| h.to_str().ok()).map(str::to_string).or_else(
            || query?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_string),
        );
    // Compared in constant time: the token is the page's only secret.
    let same = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if !same {
        return Some("no valid token");
    }
    None
}

async fn guard(State(shared): State<Arc<Shared>>, req: HttpRequest, next: Next) -> Response {
    if let Some(why) = refusal(req.headers(), req.uri().query(), &shared.token, shared.port) {
        log::warn!("web: refused {} {}: {why}", req.method(), req.uri().path());
        return (StatusCode::FORBIDDEN, format!("refused: {why}\n")).into_response();
    }
    next.run(req).await
}

const PAGE: &str = include_str!("page.html");

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("content-security-policy"), "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:"),
        ],
        PAGE,
    )
        .into_response()
}

fn state_json(shared: &Shared) -> String {
    let p = shared.lock();
    let mut obj = p.state.clone();
    obj.insert("version".into(), p.version.into());
    obj.insert("ended".into(), p.ended.into());
    obj.insert("trace_events".into(), p.trace_events.into());
    obj.insert("log_lines".into(), p.log.len().into());
    let output: Vec<serde_json::Value> = p
        .output
        .iter()
        .map(|(err, line)| serde_json::json!({"error": err, "text": line}))
        .collect();
    obj.insert("output".into(), output.into());
    serde_json::Value::Object(obj).to_string()
}

async fn state(State(shared): State<Arc<Shared>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state_json(&shared)).into_response()
}

async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let rx = shared.changed.subscribe();
    // The stream ends when the session does, so that the server can stop.
    let stops =
        tokio_stream::wrappers::WatchStream::from_changes(shared.stop.subscribe()).map(|_| false);
    let states = tokio_stream::wrappers::WatchStream::new(rx).map(|_| true);
    let stream = states.merge(stops).map_while(move |go| {
        go.then(|| Ok::<_, Infallible>(Event::default().event("state").data(state_json(&shared))))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn session_log(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = shared.lock().log.join("\n");
    text.push('\n');
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"session.txt\""),
        ],
        text,
    )
        .into_response()
}

async fn diagram(State(shared): State<Arc<Shared>>) -> Response {
    let (events, cached, trace) = {
        let p = shared.lock();
        let cached = p.svg.as_ref().filter(|(n, _)| *n == p.trace_events).map(|(_, s)| s.clone());
        let trace = if cached.is_none() { p.trace.clone() } else { String::new() };
        (p.trace_events, cached, trace)
    };
    let svg = match cached {
        Some(s) => s,
        None => {
            let drawn = match crate::draw::model::build(&trace) {
                Ok(m) => crate::draw::svg::render(&m),
                Err(e) => {
                    return (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot draw: {e}\n"))
                        .into_response()
                }
            };
            let s = Arc::new(drawn);
            shared.lock().svg = Some((events, s.clone()));
            s
        }
    };
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], (*svg).clone())
        .into_response()
}

async fn command(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if shared.lock().ended {
        return (StatusCode::CONFLICT, "the session has ended\n").into_response();
    }
    let text = String::from_utf8_lossy(&body);
    // One line: a pasted block runs line by line, as a file's would.
    for line in text.lines() {
        if shared.requests.send(Request::Line(line.to_string())).is_err() {
            return (StatusCode::CONFLICT, "the session has ended\n").into_response();
        }
    }
    (StatusCode::ACCEPTED, "queued\n").into_response()
}

async fn step(State(shared): State<Arc<Shared>>) -> Response {
    if shared.lock().ended || shared.requests.send(Request::Step).is_err() {
        return (StatusCode::CONFLICT, "the session has ended\n").into_response();
    }
    (StatusCode::ACCEPTED, "queued\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    // The token, the Host and the Origin are each enforced.
    #[test]
    fn requests_need_the_token_and_our_own_host() {
        let t = "00ff";
        let q = Some("token=00ff");
        assert_eq!(refusal(&headers("127.0.0.1:80", None), q, t, 80), None);
        assert_eq!(refusal(&headers("localhost:80", Some("http://localhost:80")), q, t, 80), None);
        let mut h = headers("[::1]:80", None);
        h.insert("x-bank-token", HeaderValue::from_static("00ff"));
        assert_eq!(refusal(&h, None, t, 80), None);
        assert_eq!(refusal(&headers("127.0.0.1:80", None), None, t, 80), Some("no valid token"));
        assert_eq!(
            refusal(&headers("127.0.0.1:80", None), Some("token=00fe"), t, 80),
            Some("no valid token")
        );
        assert_eq!(
            refusal(&headers("127.0.0.1:80", None), Some("token=00f"), t, 80),
            Some("no valid token")
        );
        assert_eq!(refusal(&headers("evil.example:80", None), q, t, 80), Some("foreign Host"));
        assert_eq!(refusal(&headers("127.0.0.1:81", None), q, t, 80), Some("foreign Host"));
        assert_eq!(
            refusal(&headers("127.0.0.1:80", Some("http://evil.example:80")), q, t, 80),
            Some("foreign Origin")
        );
        assert_eq!(
            refusal(&headers("127.0.0.1:80", Some("null")), q, t, 80),
            Some("foreign Origin")
        );
    }
}
