//! Chandy–Lamport snapshots at one node, keyed by snapshot id.
//!
//! The algorithm (Chandy and Lamport, "Distributed Snapshots: Determining Global States of
//! Distributed Systems", ACM TOCS 3(1), 1985), over FIFO channels:
//!
//! 1. **Recording.** A node records its state when told to (it initiates snapshot `k`) or on
//!    the first marker `k` it receives, whichever comes first, and at that moment sends one
//!    marker `k` on every outgoing channel, before any later message on that channel.
//! 2. **Channel state.** From its recording on, the node records every message arriving on
//!    an incoming channel until that channel's marker `k` arrives; the channel whose marker
//!    caused the recording is recorded empty.
//! 3. **Local completion.** Snapshot `k` is complete at this node once a marker `k` has
//!    arrived on every incoming channel.
//!
//! Invariant: the recorded node states plus the recorded channel states form a consistent
//! cut (no message is received before the cut and sent after it), so the money in them is
//! exactly the money in the system. Several snapshots can run at once: markers carry their
//! id and every id has its own state (COS418's concurrent snapshots).
//!
//! A channel created while snapshot `k` runs (a node joins) is handled as if it had always
//! existed and been empty: the new node records at creation and sends its markers first,
//! and every node that had already recorded `k` sends marker `k` first on its new channel
//! (see [`Snapshots::on_peer_added`]).

use super::effect::Effect;
use crate::ids::{AccountName, Amount, NodeId, SnapshotId};
use crate::wire::{
    ChannelMsg, GlobalSnapshot, Incomplete, LocalReport, ObserverReply, RecordedState,
};
use std::collections::{BTreeMap, BTreeSet};

/// A node's money at one moment: all of it, and each named account's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Holdings {
    /// All the node's money (every account), held money included.
    pub balance: Amount,
    /// Each named account's balance, by name.
    pub accounts: Vec<(AccountName, Amount)>,
}

impl From<Amount> for Holdings {
    fn from(balance: Amount) -> Holdings {
        Holdings { balance, accounts: Vec::new() }
    }
}

/// What one node recorded for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LocalSnapshot {
    /// The balance at the moment of recording.
    pub balance: Amount,
    /// Each named account's balance at that moment, by name.
    pub accounts: Vec<(AccountName, Amount)>,
    /// Transfers recorded in transit, per incoming channel, in arrival order.
    pub channels: BTreeMap<NodeId, Vec<Amount>>,
    /// Incoming channels still being recorded (their marker has not arrived).
    pub open: BTreeSet<NodeId>,
}

impl LocalSnapshot {
    /// The money recorded in transit on the channel from `from`.
    pub fn channel_sum(&self, from: NodeId) -> Amount {
        self.channels.get(&from).map_or(Amount::ZERO, |v| v.iter().copied().sum())
    }
}

/// Every snapshot one node takes part in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Snapshots {
    taken: BTreeMap<SnapshotId, LocalSnapshot>,
    /// Ids whose `open` set is not empty: the only ones a Transfer can be recorded into,
    /// kept so that delivering a Transfer does not walk every snapshot ever taken.
    recording: Vec<SnapshotId>,
}

impl Snapshots {
    /// No snapshot taken.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether some snapshot has recorded here and still waits for a marker.
    pub fn recording(&self) -> bool {
        !self.recording.is_empty()
    }

    /// What was recorded for `id`, if anything.
    pub fn get(&self, id: SnapshotId) -> Option<&LocalSnapshot> {
        self.taken.get(&id)
    }

    /// Rule 1: record the node's money (`here`) for `id` and send marker `id` to every
    /// peer. Every incoming channel starts recording except `closed`, the channel whose
    /// marker triggered this.
    ///
    /// # Panics
    /// If `id` was already recorded: recording twice is a bug in the caller.
    pub fn record(
        &mut self,
        id: SnapshotId,
        here: Holdings,
        peers: &[NodeId],
        closed: Option<NodeId>,
        out: &mut Vec<Effect>,
    ) {
        let open: BTreeSet<NodeId> = peers.iter().copied().filter(|&p| Some(p) != closed).collect();
        if !open.is_empty() {
            self.recording.push(id);
        }
        let Holdings { balance, accounts } = here;
        let fresh = LocalSnapshot { balance, accounts, channels: BTreeMap::new(), open };
        assert!(self.taken.insert(id, fresh).is_none(), "snapshot {id} recorded twice");
        for &to in peers {
            out.push(Effect::Send { to, msg: ChannelMsg::Marker { snapshot: id } });
        }
    }

    /// Rule 2: a Transfer of `amount` arrived from `from`; record it in every snapshot
    /// still recording that channel.
    pub fn on_transfer(&mut self, from: NodeId, amount: Amount) {
        for id in &self.recording {
            let snap = self.taken.get_mut(id).expect("recording ids are taken");
            if snap.open.contains(&from) {
                snap.channels.entry(from).or_default().push(amount);
            }
        }
    }

    /// A marker `id` arrived from `from`. Returns the recorded balance when this marker
    /// made the node record (rule 1: `here` says what the node holds), `None` when it
    /// only closed a channel (rule 2). A marker on a channel already closed for `id`
    /// cannot happen on a FIFO channel with one marker per snapshot; it is ignored.
    pub fn on_marker(
        &mut self,
        from: NodeId,
        id: SnapshotId,
        here: impl FnOnce() -> Holdings,
        peers: &[NodeId],
        out: &mut Vec<Effect>,
    ) -> Option<Amount> {
        match self.taken.get_mut(&id) {
            None => {
                let here = here();
                let balance = here.balance;
                self.record(id, here, peers, Some(from), out);
                Some(balance)
            }
            Some(snap) => {
                if snap.open.remove(&from) && snap.open.is_empty() {
                    self.recording.retain(|&r| r != id);
                }
                None
            }
        }
    }

    /// A channel from and to `peer` was created, and `peer` recorded every snapshot in
    /// `join` at its creation. For each of those this node has recorded: send the marker
    /// first on the new channel (the channel was empty at this node's recording), and
    /// record the incoming channel from `peer` until its marker arrives.
    pub fn on_peer_added(&mut self, peer: NodeId, join: &[SnapshotId], out: &mut Vec<Effect>) {
        for &id in join {
            if let Some(snap) = self.taken.get_mut(&id) {
                if snap.open.is_empty() {
                    self.recording.push(id);
                }
                snap.open.insert(peer);
                out.push(Effect::Send { to: peer, msg: ChannelMsg::Marker { snapshot: id } });
            }
        }
    }

    /// The report the observer gathers for `id`.
    pub fn report(&self, id: SnapshotId) -> LocalReport {
        LocalReport {
            snapshot: id,
            recorded: self.taken.get(&id).map(|s| RecordedState {
                balance: s.balance,
                accounts: s.accounts.clone(),
                channels: s.channels.keys().map(|&from| (from, s.channel_sum(from))).collect(),
                open: s.open.iter().copied().collect(),
            }),
        }
    }
}

/// The observer's half of the algorithm: join what every member recorded for each
/// snapshot into global snapshots, or say which channels are still open.
///
/// `wanted` lists (snapshot, its members); `reports` holds, per node, what that node
/// reported for the snapshots in `wanted`, in any order. A snapshot is complete when every
/// member has recorded and no member still waits for a marker; the channel state of
/// (s → d) is what d recorded for its channel from s. All or nothing: if any snapshot is
/// incomplete, nothing is gathered and every incomplete one is named.
pub fn assemble(
    wanted: &[(SnapshotId, Vec<NodeId>)],
    reports: &BTreeMap<NodeId, Vec<LocalReport>>,
) -> ObserverReply {
    let find = |node: NodeId, id: SnapshotId| -> Option<&RecordedState> {
        reports.get(&node)?.iter().find(|r| r.snapshot == id)?.recorded.as_ref()
    };
    let mut gathered = Vec::new();
    let mut incomplete = Vec::new();
    for (id, members) in wanted {
        let mut members = members.clone();
        members.sort();
        let mut open = Vec::new();
        let mut nodes = Vec::new();
        let mut channels = Vec::new();
        let mut accounts = Vec::new();
        for &d in &members {
            match find(d, *id) {
                None => open.extend(members.iter().filter(|&&s| s != d).map(|&s| (s, d))),
                Some(st) => {
                    open.extend(st.open.iter().map(|&s| (s, d)));
                    nodes.push((d, st.balance));
                    accounts.extend(st.accounts.iter().cloned());
                    for &s in members.iter().filter(|&&s| s != d) {
                        let sum =
                            st.channels.iter().find(|c| c.0 == s).map_or(Amount::ZERO, |c| c.1);
                        channels.push((s, d, sum));
                    }
                }
            }
        }
        if open.is_empty() {
            channels.sort();
            accounts.sort();
            gathered.push(GlobalSnapshot { snapshot: *id, nodes, channels, accounts });
        } else {
            open.sort();
            incomplete.push(Incomplete { snapshot: *id, open });
        }
    }
    if incomplete.is_empty() {
        ObserverReply::Collected(gathered)
    } else {
        ObserverReply::NotComplete(incomplete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId(i)
    }
    fn s(i: u32) -> SnapshotId {
        SnapshotId(i)
    }
    fn marker(to: u32, id: u32) -> Effect {
        Effect::Send { to: n(to), msg: ChannelMsg::Marker { snapshot: s(id) } }
    }

    // `recording` says whether a snapshot here still waits for a marker (a load pauses
    // for it): from the recording until the last marker, for each snapshot.
    #[test]
    fn recording_lasts_until_the_last_marker() {
        let mut snaps = Snapshots::new();
        let mut out = Vec::new();
        assert!(!snaps.recording());
        snaps.record(s(0), Amount(10).into(), &[n(2), n(3)], None, &mut out);
        assert!(snaps.recording());
        snaps.on_marker(n(2), s(0), || Amount(10).into(), &[n(2), n(3)], &mut out);
        assert!(snaps.recording(), "one channel is still open");
        snaps.on_marker(n(3), s(0), || Amount(10).into(), &[n(2), n(3)], &mut out);
        assert!(!snaps.recording());
        // A lone node (no peers) records a snapshot that is complete at once.
        snaps.record(s(1), Amount(10).into(), &[], None, &mut out);
        assert!(!snaps.recording());
    }

    // Rule 1: recording sends one marker on every outgoing channel.
    #[test]
    fn recording_sends_a_marker_to_every_peer() {
        let mut snaps = Snapshots::new();
        let mut out = Vec::new();
        snaps.record(s(0), Amount(10).into(), &[n(2), n(3)], None, &mut out);
        assert_eq!(out, vec![marker(2, 0), marker(3, 0)]);
        assert_eq!(snaps.get(s(0)).unwrap().open, [n(2), n(3)].into());
    }

    // Rule 1 + 2: the first marker records, and its channel is recorded empty.
    #[test]
    fn first_marker_records_and_closes_its_own_channel() {
        let mut snaps = Snapshots::new();
        let mut out = Vec::new();
        let got = snaps.on_marker(n(2), s(0), || Amount(7).into(), &[n(2), n(3)], &mut out);
        assert_eq!(got, Some(Amount(7)));
        assert_eq!(out, vec![marker(2, 0), marker(3, 0)]);
        snaps.on_transfer(n(2), Amount(5));
        snaps.on_transfer(n(3), Amount(4));
        let snap = snaps.get(s(0)).unwrap();
        assert_eq!(snap.channel_sum(n(2)), Amount(0));
        assert_eq!(snap.channel_sum(n(3)), Amount(4));
    }

    // Rule 2: recording of a channel stops at its marker.
    #[test]
    fn a_channel_is_recorded_until_its_marker() {
        let mut snaps = Snapshots::new();
        let mut out = Vec::new();
        snaps.record(s(0), Amount(1).into(), &[n(2)], None, &mut out);
        snaps.on_transfer(n(2), Amount(100));
        snaps.on_transfer(n(2), Amount(20));
        assert_eq!(snaps.on_marker(n(2), s(0), || Amount(121).into(), &[n(2)], &mut out), None);
        snaps.on_transfer(n(2), Amount(3));
        let snap = snaps.get(s(0)).unwrap();
        assert_eq!(snap.channels[&n(2)], vec![Amount(100), Amount(20)]);
        assert!(snap.open.is_empty());
        assert_eq!(snap.balance, Amount(1));
    }

    // Concurrent snapshots: a Transfer belongs to the channel state of every id recording it.
    #[test]
    fn concurrent_snapshots_keep_separate_state() {
        let mut snaps = Snapshots::new();
        let mut out = Vec::new();
        snaps.record(s(0), Amount(1).into(), &[n(2), n(3)], None, &mut out);
        snaps.on_marker(n(3), s(1), || Amount(1).into(), &[n(2), n(3)], &mut out);
        snaps.on_transfer(n(2), Amount(5));
        snaps.on_transfer(n(3), Amount(6));
        assert_eq!(snaps.get(s(0)).unwrap().channel_sum(n(2)), Amount(5));
        assert_eq!(snaps.get(s(0)).unwrap().channel_sum(n(3)), Amount(6));
        assert_eq!(snaps.get(s(1)).unwrap().channel_sum(n(2)), Amount(5));
        assert_eq!(snaps.get(s(1)).unwrap().channel_sum(n(3)), Amount(0));
    }

    // A new channel during a snapshot: marker first, and the new incoming channel is recorded.
    #[test]
    fn a_peer_added_mid_snapshot_gets_the_marker_and_is_awaited() {
        let mut snaps = Snapshots::new();
        let mut out = Vec::new();
        snaps.record(s(0), Amount(1).into(), &[n(2)], None, &mut out);
        out.clear();
        snaps.on_peer_added(n(9), &[s(0), s(1)], &mut out);
        assert_eq!(out, vec![marker(9, 0)], "only recorded snapshots send a marker");
        assert!(snaps.get(s(0)).unwrap().open.contains(&n(9)));
        let r = snaps.report(s(0));
        assert_eq!(r.recorded.unwrap().open, vec![n(2), n(9)]);
        assert_eq!(snaps.report(s(1)).recorded, None);
    }

    fn state(balance: u64, channels: &[(u32, u64)], open: &[u32]) -> Option<RecordedState> {
        Some(RecordedState {
            balance: Amount(balance),
            accounts: Vec::new(),
            channels: channels.iter().map(|&(s, a)| (n(s), Amount(a))).collect(),
            open: open.iter().map(|&s| n(s)).collect(),
        })
    }

    // Global assembly: every ordered pair of members, by source then destination.
    #[test]
    fn assemble_lists_every_ordered_pair() {
        let reports = BTreeMap::from([
            (n(1), vec![LocalReport { snapshot: s(0), recorded: state(300, &[(2, 100)], &[]) }]),
            (n(2), vec![LocalReport { snapshot: s(0), recorded: state(1100, &[], &[]) }]),
        ]);
        let got = assemble(&[(s(0), vec![n(2), n(1)])], &reports);
        assert_eq!(
            got,
            ObserverReply::Collected(vec![GlobalSnapshot {
                snapshot: s(0),
                nodes: vec![(n(1), Amount(300)), (n(2), Amount(1100))],
                channels: vec![(n(1), n(2), Amount(0)), (n(2), n(1), Amount(100))],
                accounts: Vec::new(),
            }])
        );
    }

    // Completeness: a missing marker or a node that has not recorded names the open channels.
    #[test]
    fn assemble_names_the_open_channels() {
        let reports = BTreeMap::from([
            (n(1), vec![LocalReport { snapshot: s(0), recorded: state(1, &[], &[3]) }]),
            (n(2), vec![LocalReport { snapshot: s(0), recorded: None }]),
            (n(3), vec![LocalReport { snapshot: s(0), recorded: state(1, &[], &[]) }]),
        ]);
        let got = assemble(&[(s(0), vec![n(1), n(2), n(3)])], &reports);
        assert_eq!(
            got,
            ObserverReply::NotComplete(vec![Incomplete {
                snapshot: s(0),
                open: vec![(n(1), n(2)), (n(3), n(1)), (n(3), n(2))],
            }])
        );
    }
}
