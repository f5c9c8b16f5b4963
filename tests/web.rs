//! `--web` (SPEC chapter 9) in a real headless Chromium: the live page is loaded, its
//! buttons and command line are clicked and typed into, and what it shows is asserted;
//! stdout must equal the session's own command file run without the page. The step mode
//! and the refusal of requests without the token or from a foreign host are tested too,
//! and so are standard input's lines (a pipe here) running with the page's in one run.
//!
//! Chromium comes from Debian's `chromium` package (`.ci/run` installs it). Without it
//! these tests fail under `CI=true` and skip with a message elsewhere. Waiting is
//! event-driven: the page is asked for a promise that a `MutationObserver` resolves when
//! the condition holds (the 20 s bound is a failure, never a pause).
//! `target/screenshots/live-page.png` is the README's screenshot of the page.

mod util;

use crossbeam_channel::Receiver;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use util::{assert_same, run_file, TempDir};

/// Debian's Chromium, or `None` after a visible skip message (a failure under CI=true).
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("Chromium is not installed, and CI=true must run the browser tests");
        }
        let _ = std::io::stderr()
            .write_all(b"SKIPPED browser tests: no Chromium (apt-get install -y chromium)\n");
    }
    found
}

/// A `bank-master --web` process, killed when dropped. Threads read its pipes, so
/// nothing here waits on it without a bound: stdout's lines as they come, its whole text
/// at its end (the process exited) and the first stderr line (the page's address) arrive
/// on channels.
struct Server {
    child: Child,
    url: String,
    stdout: Receiver<String>,
    lines: Receiver<String>,
    /// The master's standard input, when the test writes it (else it is empty).
    stdin: Option<ChildStdin>,
}

/// How long a test waits for the master before it fails.
const BOUND: Duration = Duration::from_secs(20);

impl Server {
    /// With an empty standard input.
    fn start(args: &[&str]) -> Server {
        Server::launch(args, false)
    }

    /// With standard input a pipe the test writes ([`Server::input`]).
    fn start_with_input(args: &[&str]) -> Server {
        Server::launch(args, true)
    }

    fn launch(args: &[&str], input: bool) -> Server {
        let mut child = Command::new(util::bin())
            .args(["--seed", "1", "--watchdog", "20"])
            .args(args)
            .stdin(if input { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bank-master --web");
        let (out_tx, stdout) = crossbeam_channel::bounded(1);
        let (line_tx, lines) = crossbeam_channel::unbounded();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        std::thread::spawn(move || {
            let (mut all, mut line) = (String::new(), String::new());
            while out.read_line(&mut line).is_ok_and(|n| n > 0) {
                all.push_str(&line);
                let _ = line_tx.send(std::mem::take(&mut line));
            }
            let _ = out_tx.send(all);
        });
        // The first stderr line names the page; the rest is drained so the child never
        // blocks on a full pipe.
        let (line_tx, first_line) = crossbeam_channel::bounded(1);
        let mut err = BufReader::new(child.stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = err.read_line(&mut first);
            let _ = line_tx.send(first);
            let mut sink = String::new();
            let _ = err.read_to_string(&mut sink);
        });
        let first = first_line.recv_timeout(BOUND).expect("the master names its page on stderr");
        let url = first
            .trim()
            .strip_prefix("bank-master: live page at ")
            .unwrap_or_else(|| panic!("no URL on stderr: {first:?}"))
            .to_string();
        let stdin = child.stdin.take();
        Server { child, url, stdout, lines, stdin }
    }

    /// Writes `text` to the master's standard input.
    fn input(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("started with input");
        stdin.write_all(text.as_bytes()).expect("write the master's standard input");
    }

    /// Closes the master's standard input: it reads its end.
    fn end_input(&mut self) {
        self.stdin = None;
    }

    /// Waits (20 s at most for each) for stdout's next lines, which must be `want`.
    fn expect(&self, want: &[&str]) {
        for w in want {
            let got = self.lines.recv_timeout(BOUND);
            assert_eq!(got.as_deref().map(str::trim_end), Ok(*w), "stdout's next line");
        }
    }

    /// Sends `lines` as the page's command box does; returns the status code.
    fn post(&self, lines: &str) -> u16 {
        let (host, token) = (self.host(), self.token());
        let request = format!(
            "POST /api/command HTTP/1.1\r\nHost: {host}\r\nx-bank-token: {token}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{lines}",
            lines.len()
        );
        status(host, &request)
    }

    /// The session's command file, as the page offers it.
    fn session_log(&self) -> String {
        let (host, token) = (self.host(), self.token());
        let mut s = TcpStream::connect(host).expect("connect");
        let request = format!(
            "GET /api/log?token={token} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("read the session log");
        let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_string()
    }

    fn host(&self) -> &str {
        self.url.trim_start_matches("http://").split('/').next().unwrap()
    }

    fn token(&self) -> &str {
        self.url.split("token=").nth(1).unwrap()
    }

    /// Waits (20 s at most) for the process to end and returns its stdout.
    fn finish(mut self) -> String {
        let stdout = self.stdout.recv_timeout(BOUND).expect("the master ends after KillAll");
        let status = self.child.wait().expect("wait for the master");
        assert!(status.success() || status.code() == Some(1), "{status:?}");
        stdout
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser(chrome: PathBuf, data: &TempDir) -> Browser {
    let args: Vec<&OsStr> = [
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    let opts = LaunchOptions {
        headless: true,
        sandbox: false,
        path: Some(chrome),
        window_size: Some((1400, 1000)),
        idle_browser_timeout: Duration::from_secs(120),
        user_data_dir: Some(data.0.clone()),
        // Chromium makes its singleton socket directory under TMPDIR and leaves it when
        // it is killed: keep it inside the test's own directory, removed on drop.
        process_envs: Some(HashMap::from([("TMPDIR".to_string(), data.0.display().to_string())])),
        args,
        ..LaunchOptions::default()
    };
    Browser::new(opts).expect("launch Chromium")
}

/// Waits until the JavaScript expression `cond` is true on the page.
fn wait(tab: &Tab, cond: &str) {
    let js = format!(
        "new Promise(function(res,rej){{function ok(){{try{{return !!({cond});}}catch(e){{return false;}}}}\
         if(ok())return res(true);var mo=new MutationObserver(function(){{if(ok()){{mo.disconnect();res(true);}}}});\
         mo.observe(document.body,{{subtree:true,childList:true,characterData:true,attributes:true}});\
         setTimeout(function(){{mo.disconnect();res(ok());}},20000);}})"
    );
    let got = tab.evaluate(&js, true).expect("evaluate");
    assert_eq!(got.value, Some(serde_json::Value::Bool(true)), "the page never showed: {cond}");
}

/// The text of the first element matching `sel`.
fn text(tab: &Tab, sel: &str) -> String {
    let js = format!("(document.querySelector({sel:?})||{{textContent:''}}).textContent");
    let v = tab.evaluate(&js, false).expect("evaluate").value;
    v.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Sets the page's node and amount fields.
fn fields(tab: &Tab, a: u32, b: u32, amt: u64) {
    let js = format!(
        "document.getElementById('a').value={a};document.getElementById('b').value={b};\
         document.getElementById('amt').value={amt};true"
    );
    tab.evaluate(&js, false).expect("set fields");
}

fn click(tab: &Tab, label: &str) {
    let sel = format!("//div[@id='buttons']/button[text()='{label}']");
    tab.wait_for_xpath(&sel).expect(label).click().expect(label);
}

/// Types a line into the command box and runs it.
fn command(tab: &Tab, line: &str) {
    tab.wait_for_element("#line").unwrap().click().unwrap();
    tab.type_str(line).unwrap().press_key("Enter").unwrap();
}

/// How many lines the page says have run.
fn lines_run(tab: &Tab) -> u64 {
    let t = text(tab, "#summary");
    t.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn session_log(tab: &Tab) -> String {
    let js = "fetch('/api/log'+location.search).then(function(r){return r.text();})";
    let v = tab.evaluate(js, true).expect("fetch the session log").value;
    v.and_then(|v| v.as_str().map(str::to_string)).expect("the log is text")
}

fn screenshot(tab: &Tab, name: &str) {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("screenshot");
    let dir = util::root().join("target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(name), png);
}

// The page's buttons and command line run a session: the page shows balances, queued
// messages, the snapshot and a node down then up, the diagram grows, and stdout equals
// the downloaded session run as a file.
#[test]
fn the_live_page_runs_a_session_and_shows_it() {
    let Some(chrome) = chromium() else { return };
    let server = Server::start(&["--web"]);
    let data = TempDir::new("chromium");
    let browser = browser(chrome, &data);
    let tab: Arc<Tab> = browser.new_tab().unwrap();
    tab.set_default_timeout(Duration::from_secs(20));
    tab.navigate_to(&server.url).unwrap().wait_until_navigated().unwrap();
    wait(&tab, "document.getElementById('conn').textContent==='live'");
    for line in ["StartMaster", "CreateNode 1 1000", "CreateNode 2 500", "CreateNode 3 250"] {
        command(&tab, line);
    }
    wait(&tab, "document.querySelectorAll('#nodes .node').length===3");
    fields(&tab, 1, 2, 300);
    click(&tab, "Send");
    wait(&tab, "document.querySelector('[data-channel=\"1-2\"]').textContent.indexOf('$300')>=0");
    assert!(text(&tab, "#nodes [data-node=\"1\"] .bal").contains("$700"));
    fields(&tab, 3, 1, 50);
    click(&tab, "Send");
    fields(&tab, 1, 2, 0);
    click(&tab, "BeginSnapshot");
    wait(
        &tab,
        "document.querySelector('[data-channel=\"1-2\"]').textContent.indexOf('marker S0')>=0",
    );
    click(&tab, "ReceiveAll");
    wait(&tab, "document.getElementById('channels').textContent==='every channel is empty'");
    assert!(text(&tab, "#nodes [data-node=\"2\"] .bal").contains("$800"), "node 2 took the $300");
    click(&tab, "CollectState");
    wait(&tab, "document.querySelector('[data-snapshot=\"0\"]')!==null");
    let snap = text(&tab, "#snaps");
    assert!(snap.contains("total $1750"), "{snap}");
    assert!(snap.contains("node 1 = $700"), "{snap}");
    click(&tab, "PrintSnapshot");
    fields(&tab, 2, 1, 0);
    click(&tab, "Crash");
    wait(&tab, "document.querySelector('#nodes [data-node=\"2\"]').className.indexOf('down')>=0");
    click(&tab, "Restart");
    wait(&tab, "document.querySelector('#nodes [data-node=\"2\"]').className.indexOf('up')>=0");
    command(&tab, "Balances");
    wait(&tab, "document.getElementById('out').textContent.indexOf('node 3 = 200')>=0");
    // A rejected line shows as an error and changes nothing.
    command(&tab, "Send 1 9 5");
    wait(&tab, "document.querySelector('#out .err')!==null");
    // The diagram: one arrow per message, the cut drawn.
    wait(&tab, "document.querySelectorAll('#diagram g.msg').length>=8");
    wait(&tab, "document.querySelector('#diagram g.cut')!==null");
    screenshot(&tab, "live-page.png");
    let log = session_log(&tab);
    assert!(log.starts_with("StartMaster\nCreateNode 1 1000\n"), "{log}");
    command(&tab, "KillAll");
    let stdout = server.finish();
    assert!(stdout.contains("---Node states\nnode 1 = 700\nnode 2 = 500\nnode 3 = 200\n---Channel states\nchannel (1 -> 2) = 300\n"), "{stdout}");
    // The same lines from a file print the same.
    let tmp = TempDir::new("web-session");
    let file = tmp.0.join("session.txt");
    std::fs::write(&file, format!("{log}KillAll\n")).unwrap();
    let again = run_file(&file, 1, &[]);
    assert_same("the session run from its file", &again.stdout, &stdout);
}

// --step runs the file one command per click, comments along, and the page says which
// line is next; stdout is the file's expected output.
#[test]
fn step_mode_runs_a_file_one_line_per_click() {
    let Some(chrome) = chromium() else { return };
    let file = util::root().join("testcases/arg.txt");
    let server = Server::start(&["--web", "--step", file.to_str().unwrap()]);
    let data = TempDir::new("chromium-step");
    let browser = browser(chrome, &data);
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&server.url).unwrap().wait_until_navigated().unwrap();
    wait(&tab, "document.getElementById('steptext').textContent.indexOf('StartMaster')>=0");
    assert!(
        text(&tab, "#steptext").starts_with("next: line 3 of 32"),
        "{}",
        text(&tab, "#steptext")
    );
    let commands = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .count();
    let mut before = lines_run(&tab);
    for k in 1..=commands {
        tab.wait_for_element("#stepbtn").unwrap().click().unwrap();
        // Each click runs one command (and the comments before the next one).
        wait(&tab, &format!("parseInt(document.getElementById('summary').textContent)>{before}"));
        before = lines_run(&tab);
        if k == 4 {
            wait(&tab, "document.querySelectorAll('#nodes .node').length===3");
            assert_eq!(text(&tab, "#nodes [data-node=\"1\"] .bal"), "$1000");
            assert!(
                text(&tab, "#steptext").contains("Send 1 2 300"),
                "{}",
                text(&tab, "#steptext")
            );
        }
    }
    wait(&tab, "document.getElementById('steptext').textContent==='the file has run to its end'");
    assert!(text(&tab, "#out").contains("ERR_SEND"));
    command(&tab, "KillAll");
    let want = std::fs::read_to_string(util::root().join("testcases/arg.expected")).unwrap();
    assert_same("arg.txt stepped", &want, &server.finish());
}

// `--web -` with standard input a pipe: its lines and the page's drive one run, each in
// the order it comes; when standard input ends the page stays up until its KillAll.
// stdout equals the session's command file run without the page. No browser needed.
#[test]
fn piped_standard_input_and_the_page_drive_one_run() {
    let mut server = Server::start_with_input(&["--web", "-"]);
    server.input("StartMaster\nCreateNode 1 1000\nCreateNode 2 500\nBalances\n");
    server.expect(&["node 1 = 1000", "node 2 = 500"]);
    assert_eq!(server.post("Send 1 2 300\nBalances"), 202);
    server.expect(&["node 1 = 700", "node 2 = 500"]);
    server.input("Receive 2 1\nBalances\n");
    server.expect(&["1 Transfer 300", "node 1 = 700", "node 2 = 800"]);
    server.end_input();
    // Standard input has ended; the page still runs lines.
    assert_eq!(server.post("Send 2 1 50\nBalances"), 202);
    server.expect(&["node 1 = 700", "node 2 = 750"]);
    let log = server.session_log();
    assert!(log.starts_with("StartMaster\nCreateNode 1 1000\n"), "{log}");
    assert_eq!(server.post("KillAll"), 202);
    let stdout = server.finish();
    let tmp = TempDir::new("web-stdin");
    let file = tmp.0.join("session.txt");
    std::fs::write(&file, format!("{log}KillAll\n")).unwrap();
    assert_same("the session run from its file", &run_file(&file, 1, &[]).stdout, &stdout);
}

// `--web` with commands piped in: the page shows each line of standard input as it runs,
// its command box runs lines between them, and it goes on after standard input ends.
#[test]
fn the_live_page_shows_lines_from_standard_input() {
    let Some(chrome) = chromium() else { return };
    let mut server = Server::start_with_input(&["--web"]);
    let data = TempDir::new("chromium-stdin");
    let browser = browser(chrome, &data);
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&server.url).unwrap().wait_until_navigated().unwrap();
    wait(&tab, "document.getElementById('conn').textContent==='live'");
    server.input("StartMaster\nCreateNode 1 1000\nCreateNode 2 500\n");
    wait(&tab, "document.querySelectorAll('#nodes .node').length===2");
    command(&tab, "Send 1 2 300");
    wait(&tab, "document.querySelector('[data-channel=\"1-2\"]').textContent.indexOf('$300')>=0");
    server.input("Receive 2 1\n");
    wait(&tab, "document.getElementById('channels').textContent==='every channel is empty'");
    assert!(text(&tab, "#nodes [data-node=\"2\"] .bal").contains("$800"), "node 2 took the $300");
    server.end_input();
    command(&tab, "Balances");
    wait(&tab, "document.getElementById('out').textContent.indexOf('node 2 = 800')>=0");
    command(&tab, "KillAll");
    assert_eq!(server.finish(), "1 Transfer 300\nnode 1 = 700\nnode 2 = 800\n");
}

/// One raw HTTP request; returns the status code.
fn status(host: &str, request: &str) -> u16 {
    let mut s = TcpStream::connect(host).expect("connect");
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = BufReader::new(s).read_line(&mut reply);
    reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

// Without the token, with a foreign Host or a foreign Origin, every request is refused;
// with them it is served. No browser needed.
#[test]
fn requests_without_the_token_or_from_elsewhere_are_refused() {
    let server = Server::start(&["--web"]);
    let (host, token) = (server.host().to_string(), server.token().to_string());
    let get = |path: &str, hdrs: &str| {
        status(
            &host,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{hdrs}Connection: close\r\n\r\n"),
        )
    };
    assert_eq!(get(&format!("/api/state?token={token}"), ""), 200);
    assert_eq!(get(&format!("/?token={token}"), ""), 200);
    assert_eq!(get("/api/state", ""), 403);
    assert_eq!(get("/", ""), 403);
    assert_eq!(get("/api/state?token=0000", ""), 403);
    assert_eq!(get(&format!("/api/state?token={token}"), "Origin: http://evil.example\r\n"), 403);
    let foreign = format!(
        "GET /api/state?token={token} HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
        host.split(':').nth(1).unwrap()
    );
    assert_eq!(status(&host, &foreign), 403);
    let post = format!(
        "POST /api/command HTTP/1.1\r\nHost: {host}\r\nContent-Length: 11\r\nConnection: close\r\n\r\nStartMaster"
    );
    assert_eq!(status(&host, &post), 403, "a command without the token is refused");
    let ok = format!(
        "POST /api/command HTTP/1.1\r\nHost: {host}\r\nx-bank-token: {token}\r\nContent-Length: 7\r\nConnection: close\r\n\r\nKillAll"
    );
    assert_eq!(status(&host, &ok), 202);
    assert_eq!(server.finish(), "", "nothing ran but KillAll");
}

// The page `draw -o NAME.html` writes works offline in a browser: zoom buttons scale the
// picture, and pointing at an arrow shows its details.
#[test]
fn the_drawn_page_zooms_and_shows_details() {
    let Some(chrome) = chromium() else { return };
    let tmp = TempDir::new("draw-html");
    let trace = tmp.0.join("arg.trace");
    let run =
        run_file(&util::root().join("testcases/arg.txt"), 1, &["--trace", trace.to_str().unwrap()]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let page = tmp.0.join("arg.html");
    let drew = util::run_with(
        &["draw", trace.to_str().unwrap(), "-o", page.to_str().unwrap()],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(drew.status, 0, "{}", drew.stderr);
    let data = TempDir::new("chromium-draw");
    let browser = browser(chrome, &data);
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(&format!("file://{}", page.display())).unwrap().wait_until_navigated().unwrap();
    wait(&tab, "document.querySelectorAll('#stage svg g.msg').length===11");
    let before = text(&tab, "#zoom");
    tab.wait_for_element("#zin").unwrap().click().unwrap();
    wait(&tab, &format!("document.getElementById('zoom').textContent!=={before:?}"));
    let js = "var g=document.querySelector('g.msg.transfer');\
              g.querySelector('line').dispatchEvent(new MouseEvent('mouseover',{bubbles:true}));true";
    tab.evaluate(js, false).unwrap();
    wait(
        &tab,
        "document.getElementById('details').textContent.indexOf('from node 1 to node 2')>=0",
    );
    assert!(text(&tab, "#details").contains("sent at trace line"), "{}", text(&tab, "#details"));
}
