//! Unit tests of `parse.rs`, kept apart so the module reads in one sitting.
use super::*;

fn ok(s: &str) -> Command {
    parse_line(1, s).unwrap().unwrap()
}
fn kind(s: &str) -> ParseErrorKind {
    parse_line(3, s).unwrap_err().kind
}

#[test]
fn every_command_parses() {
    assert_eq!(ok("StartMaster"), Command::StartMaster);
    assert_eq!(
        ok("CreateNode 10 500"),
        Command::CreateNode { id: NodeId(10), amount: Amount(500), on: None }
    );
    assert_eq!(
        ok("  Send 1 2 300  "),
        Command::Send { from: NodeId(1), to: NodeId(2), amount: Amount(300) }
    );
    assert_eq!(ok("Receive 2"), Command::Receive { to: NodeId(2), from: None });
    assert_eq!(ok("Receive 2 1"), Command::Receive { to: NodeId(2), from: Some(NodeId(1)) });
    assert_eq!(ok("ReceiveAll"), Command::ReceiveAll);
    assert_eq!(ok("BeginSnapshot 3"), Command::BeginSnapshot { node: NodeId(3) });
    assert_eq!(ok("CollectState"), Command::CollectState);
    assert_eq!(ok("PrintSnapshot"), Command::PrintSnapshot);
    assert_eq!(ok("KillAll"), Command::KillAll);
    assert_eq!(ok("help"), Command::Help);
}

// The fault and delay commands, their arities, and a channel to oneself refused.
#[test]
fn fault_commands_parse_and_check_their_arguments() {
    let (a, b) = (NodeId(1), NodeId(2));
    assert_eq!(ok("Hold 1 2"), Command::Hold { from: a, to: b });
    assert_eq!(ok("Release 1 2"), Command::Release { from: a, to: b });
    assert_eq!(ok("Lose 1 2"), Command::Lose { from: a, to: b });
    assert_eq!(ok("Crash 3"), Command::Crash { node: NodeId(3) });
    assert_eq!(ok("Restart 3"), Command::Restart { node: NodeId(3) });
    assert_eq!(ok("Pause 3"), Command::Pause { node: NodeId(3) });
    assert_eq!(ok("Resume 3"), Command::Resume { node: NodeId(3) });
    assert_eq!(
        ok("CrashAt 2 mid-commit"),
        Command::CrashAt { node: b, point: CrashPoint::MidCommit }
    );
    assert_eq!(ok("Balances"), Command::Balances);
    assert_eq!(ok("Check"), Command::Check);
    assert_eq!(ok("Stats"), Command::Stats);
    for bad in ["Hold 1", "Release 1 2 3", "Lose", "Crash", "Crash 1 2", "Restart", "CrashAt 2"] {
        assert!(matches!(kind(bad), ParseErrorKind::WrongArgCount { .. }), "{bad}");
    }
    for bad in ["Balances 1", "Check x", "Stats 2", "Wait 1", "ReceiveAll 1", "KillAll 2"] {
        assert!(matches!(kind(bad), ParseErrorKind::WrongArgCount { .. }), "{bad}");
    }
    assert_eq!(kind("Hold 2 2"), ParseErrorKind::SelfChannel(b));
    assert_eq!(kind("Lose 2 2"), ParseErrorKind::SelfChannel(b));
    assert_eq!(kind("CrashAt 2 nowhere"), ParseErrorKind::UnknownCrashPoint("nowhere".into()));
    assert!(parse_line(1, "CrashAt 2 nowhere").unwrap_err().to_string().contains("before-vote,"));
}

// Options after a Transfer or a Load may come in any order, each once.
#[test]
fn options_are_read_wherever_they_stand() {
    let t = ok("Transfer 1 2 30 via 3 nowait");
    assert_eq!(
        t,
        Command::Transfer {
            from: AccountRef::Node(NodeId(1)),
            to: AccountRef::Node(NodeId(2)),
            amount: Amount(30),
            via: Some(NodeId(3)),
            nowait: true,
            protocol: None
        }
    );
    assert!(matches!(kind("Transfer 1 2 30 via 3 via"), ParseErrorKind::UnexpectedWord { .. }));
    assert!(matches!(kind("Transfer 1 2 30 via 3 via 4"), ParseErrorKind::UnexpectedWord { .. }));
    assert!(matches!(
        kind("Transfer 1 2 30 via 3 nowait protocol 3pc x"),
        ParseErrorKind::WrongArgCount { .. }
    ));
    let load =
        |count, kind, seed, background| Command::Load { count, kind, parts: 2, seed, background };
    assert_eq!(ok("Load 5 async seed 9 sends"), load(5, LoadKind::Sends, Some(9), true));
    assert_eq!(ok("Load 5 seed 9 async"), load(5, LoadKind::Mixed, Some(9), true));
    assert!(matches!(kind("Load 5 async async"), ParseErrorKind::UnexpectedWord { .. }));
    assert!(matches!(kind("Load 5 seed 1 seed 2"), ParseErrorKind::UnexpectedWord { .. }));
    assert!(matches!(kind("Load 1 2 3 4 5 6 7"), ParseErrorKind::WrongArgCount { .. }));
}

// Integers: a sign, digits only; "-" alone and "-x" are not integers.
#[test]
fn integers_are_digits_with_an_optional_plus() {
    assert_eq!(parse_int("+7", "id", 9), Ok(7));
    assert_eq!(parse_int("9", "id", 9), Ok(9));
    assert!(matches!(parse_int("10", "id", 9), Err(ParseErrorKind::TooLarge { .. })));
    for bad in ["-", "-x", "+", "", "1-", "x1", "1 "] {
        assert!(
            matches!(parse_int(bad, "id", 9), Err(ParseErrorKind::NotAnInteger { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(parse_int("-3", "id", 9), Err(ParseErrorKind::Negative { .. })));
    assert_eq!(
        ParseErrorKind::Negative { what: "id", arg: "-3".into() }.to_string(),
        "id -3 is negative"
    );
    assert_eq!(
        ParseErrorKind::TooLarge { what: "id", arg: "10".into(), max: 9 }.to_string(),
        "id 10 is larger than 9"
    );
    assert_eq!(
        ParseErrorKind::SelfChannel(NodeId(4)).to_string(),
        "node 4 has no channel to itself"
    );
    assert_eq!(
        ParseErrorKind::UnexpectedWord { word: "x".into(), expected: "on, off" }.to_string(),
        "unexpected \"x\" (expected: on, off)"
    );
}

#[test]
fn blank_and_comment_lines_are_skipped() {
    assert_eq!(parse_line(1, ""), Ok(None));
    assert_eq!(parse_line(1, "   \t"), Ok(None));
    assert_eq!(parse_line(1, "# Send 1 2 3"), Ok(None));
}

#[test]
fn errors_name_the_line_the_text_and_the_reason() {
    let e = parse_line(7, " send 1 2 3 ").unwrap_err();
    assert_eq!(e.line, 7);
    assert_eq!(e.text, "send 1 2 3");
    assert_eq!(
        e.to_string(),
        "line 7: send 1 2 3: unknown command \"send\" (commands are case-sensitive; try help)"
    );
}

#[test]
fn bad_arguments_are_rejected_with_their_reason() {
    let usage = "Send <from> <to> <amount>";
    assert_eq!(kind("Send 1 2"), ParseErrorKind::WrongArgCount { expected: "3", got: 2, usage });
    assert_eq!(
        kind("StartMaster now"),
        ParseErrorKind::WrongArgCount { expected: "no", got: 1, usage: "StartMaster" }
    );
    assert_eq!(
        kind("Receive"),
        ParseErrorKind::WrongArgCount {
            expected: "1 to 3",
            got: 0,
            usage: "Receive <to> [<from> [1]]"
        }
    );
    // SPEC chapter 13: the k-th queued message; FIFO channels give only the oldest.
    assert_eq!(ok("Receive 2 1 1"), Command::Receive { to: NodeId(2), from: Some(NodeId(1)) });
    assert_eq!(kind("Receive 2 1 2"), ParseErrorKind::NotOldest(2));
    assert!(matches!(kind("Receive 2 1 x"), ParseErrorKind::NotAnInteger { .. }));
    assert_eq!(
        kind("Send 1 2 x"),
        ParseErrorKind::NotAnInteger { what: "amount", arg: "x".into() }
    );
    assert_eq!(
        kind("Send 1 2 3.5"),
        ParseErrorKind::NotAnInteger { what: "amount", arg: "3.5".into() }
    );
    assert_eq!(kind("CreateNode -1 5"), ParseErrorKind::Negative { what: "id", arg: "-1".into() });
    assert_eq!(kind("Send 1 2 -5"), ParseErrorKind::Negative { what: "amount", arg: "-5".into() });
    assert_eq!(
        kind("CreateNode 1 9223372036854775808"),
        ParseErrorKind::TooLarge {
            what: "amount",
            arg: "9223372036854775808".into(),
            max: 9223372036854775807
        }
    );
    assert!(matches!(kind("CreateNode 4294967296 1"), ParseErrorKind::TooLarge { what: "id", .. }));
    assert_eq!(kind("Send 2 2 1"), ParseErrorKind::SelfChannel(NodeId(2)));
    assert_eq!(kind("Receive 2 2"), ParseErrorKind::SelfChannel(NodeId(2)));
    assert!(matches!(kind("KILLALL"), ParseErrorKind::UnknownCommand(_)));
}

#[test]
fn transfer_takes_via_and_nowait_in_any_order() {
    let t = |s| ok(s);
    assert_eq!(
        t("Transfer 1 2 30"),
        Command::Transfer {
            from: AccountRef::Node(NodeId(1)),
            to: AccountRef::Node(NodeId(2)),
            amount: Amount(30),
            via: None,
            nowait: false,
            protocol: None
        }
    );
    assert_eq!(
        t("Transfer 1 2 30 nowait via 3"),
        Command::Transfer {
            from: AccountRef::Node(NodeId(1)),
            to: AccountRef::Node(NodeId(2)),
            amount: Amount(30),
            via: Some(NodeId(3)),
            nowait: true,
            protocol: None
        }
    );
    let unexpected =
        |w: &str, expected| ParseErrorKind::UnexpectedWord { word: w.into(), expected };
    assert_eq!(
        kind("Transfer 1 2 3 via"),
        unexpected("via", "via <node>, nowait, protocol <name>")
    );
    assert_eq!(
        kind("Transfer 1 2 3 nowait nowait"),
        unexpected("nowait", "via <node>, nowait, protocol <name>")
    );
    assert_eq!(kind("Transfer 2 2 3"), ParseErrorKind::SelfChannel(NodeId(2)));
    assert_eq!(ok("TxStatus T12"), Command::TxStatus { tx: TxnId(12) });
    assert_eq!(kind("TxStatus 12"), ParseErrorKind::MissingT("12".into()));
    assert_eq!(
        parse_line(4, "TxStatus 12").unwrap_err().to_string(),
        "line 4: TxStatus 12: transaction \"12\" has no T: transactions are written T<n>, \
         as in T12"
    );
    assert!(matches!(kind("TxStatus Tx"), ParseErrorKind::NotAnInteger { .. }));
}

#[test]
fn live_mode_commands_parse() {
    assert_eq!(ok("Live on"), Command::Live { on: true });
    assert_eq!(ok("Live off"), Command::Live { on: false });
    assert!(matches!(kind("Live maybe"), ParseErrorKind::UnexpectedWord { .. }));
    assert_eq!(ok("Wait"), Command::Wait);
    let load =
        |count, kind, seed, background| Command::Load { count, kind, parts: 2, seed, background };
    assert_eq!(ok("Load 100"), load(100, LoadKind::Mixed, None, false));
    assert_eq!(ok("Load 5 sends seed 9 async"), load(5, LoadKind::Sends, Some(9), true));
    assert_eq!(ok("Load 5 async transfers"), load(5, LoadKind::Transfers, None, true));
    assert!(matches!(kind("Load 5 sends sends"), ParseErrorKind::UnexpectedWord { .. }));
    assert!(matches!(kind("Load 5 seed"), ParseErrorKind::UnexpectedWord { .. }));
    assert!(matches!(kind("Load -5"), ParseErrorKind::Negative { .. }));
    assert!(matches!(kind("Load"), ParseErrorKind::WrongArgCount { .. }));
}

// A wrong argument count shows the command's usage.
#[test]
fn a_wrong_argument_count_shows_the_usage() {
    assert_eq!(
        parse_line(2, "Send 1 2").unwrap_err().to_string(),
        "line 2: Send 1 2: takes 3 arguments, got 2 (usage: Send <from> <to> <amount>)"
    );
    assert_eq!(
        parse_line(2, "Crash").unwrap_err().to_string(),
        "line 2: Crash: takes 1 argument, got 0 (usage: Crash <node>)"
    );
}

// Hostile bytes: a rejected line is echoed escaped (no terminal control codes) and
// cut short (a binary line does not dump kilobytes).
#[test]
fn rejected_lines_are_echoed_escaped_and_cut() {
    let e = parse_line(1, "\u{1b}[31mRed 1").unwrap_err().to_string();
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.starts_with("line 1: \\x1b[31mRed 1: unknown command \"\\x1b[31mRed\""), "{e}");
    let long = format!("Foo {}", "x".repeat(5000));
    let e = parse_line(1, &long).unwrap_err().to_string();
    assert!(e.len() < 200, "{} bytes: {e}", e.len());
}

#[test]
fn the_largest_amount_is_accepted() {
    assert_eq!(
        ok("CreateNode 1 9223372036854775807"),
        Command::CreateNode { id: NodeId(1), amount: Amount::MAX, on: None }
    );
}

// `protocol` needs its name and comes once; a bare `protocol` at the end is an error, not
// a read past the line.
#[test]
fn transfer_protocol_needs_a_name_and_comes_once() {
    for (word, want) in
        [("2pc", Protocol::TwoPc), ("3pc", Protocol::ThreePc), ("paxos", Protocol::Paxos)]
    {
        assert_eq!(ok(&format!("Protocol {word}")), Command::Protocol { protocol: want });
        let t = ok(&format!("Transfer 1 2 3 protocol {word}"));
        assert!(matches!(t, Command::Transfer { protocol: Some(p), .. } if p == want), "{word}");
    }
    assert!(parse_line(1, "Protocol 4pc").is_err());
    for bad in ["Transfer 1 2 3 protocol", "Transfer 1 2 3 protocol 2pc protocol 3pc"] {
        assert!(parse_line(1, bad).is_err(), "{bad}");
    }
}

// The parser and `help` know the same commands: a new command needs a line in both
// tables, and a name in one only is caught here.
#[test]
fn every_command_has_a_parser_and_a_usage_line() {
    let mut parsed: Vec<&str> = PARSERS.iter().map(|(name, _)| *name).collect();
    let mut listed: Vec<&str> = crate::command::COMMANDS.iter().map(|c| c.0).collect();
    parsed.sort_unstable();
    listed.sort_unstable();
    assert_eq!(parsed, listed);
}

// SPEC chapter 11: accounts where a Transfer takes nodes, CreateAccount, Transaction
// with its parts up to the first option, and a load of transactions.
#[test]
fn account_commands_parse() {
    let name = |s: &str| AccountName::parse(s).unwrap();
    assert_eq!(
        ok("CreateAccount ACC001 1 300"),
        Command::CreateAccount { name: name("ACC001"), node: NodeId(1), amount: Amount(300) }
    );
    assert_eq!(
        ok("Transfer ACC001 2 30 nowait"),
        Command::Transfer {
            from: AccountRef::Named(name("ACC001")),
            to: AccountRef::Node(NodeId(2)),
            amount: Amount(30),
            via: None,
            nowait: true,
            protocol: None
        }
    );
    assert_eq!(
        ok("Transaction ACC001:-300 ACC003:+100 2:200 via 4 protocol paxos"),
        Command::Transaction {
            changes: vec![
                (AccountRef::Named(name("ACC001")), -300),
                (AccountRef::Named(name("ACC003")), 100),
                (AccountRef::Node(NodeId(2)), 200),
            ],
            via: Some(NodeId(4)),
            nowait: false,
            protocol: Some(Protocol::Paxos)
        }
    );
    assert_eq!(
        ok("Load 9 transactions 5 seed 2"),
        Command::Load {
            count: 9,
            kind: LoadKind::Transactions,
            parts: 5,
            seed: Some(2),
            background: false
        }
    );
    assert_eq!(kind("Transaction A:-1 B:+2"), ParseErrorKind::Unbalanced(1));
    assert_eq!(kind("Transaction A:-1 A:+1"), ParseErrorKind::DuplicateAccount("A".into()));
    assert_eq!(kind("Transaction 1:-1 1:+1"), ParseErrorKind::DuplicateAccount("1".into()));
    assert_eq!(kind("Transaction A:-1"), ParseErrorKind::PartCount(1));
    assert_eq!(kind("Transaction A-1 B:+1"), ParseErrorKind::NotAChange("A-1".into()));
    assert!(matches!(kind("Transaction A:-x B:+1"), ParseErrorKind::NotAnInteger { .. }));
    assert!(matches!(kind("Transaction A:--1 B:+1"), ParseErrorKind::NotAnInteger { .. }));
    assert!(matches!(kind("Transaction a.b:-1 B:+1"), ParseErrorKind::BadAccountName { .. }));
    assert!(matches!(kind("Transfer A A 1"), ParseErrorKind::DuplicateAccount(_)));
    assert!(matches!(kind("CreateAccount 9x 1 1"), ParseErrorKind::BadAccountName { .. }));
    assert!(matches!(kind("Load 9 transactions"), ParseErrorKind::UnexpectedWord { .. }));
    assert_eq!(kind("Load 9 transactions 1"), ParseErrorKind::PartCount(1));
    assert_eq!(kind("Load 9 transactions 65"), ParseErrorKind::PartCount(65));
    let many: Vec<String> = (0..65).map(|i| format!("A{i}:+0")).collect();
    assert_eq!(kind(&format!("Transaction {}", many.join(" "))), ParseErrorKind::PartCount(65));
    let sixty_four = many[..64].join(" ");
    assert!(matches!(ok(&format!("Transaction {sixty_four}")), Command::Transaction { .. }));
    assert_eq!(
        parse_line(2, "Transaction A:-9223372036854775808 B:+1").unwrap_err().to_string(),
        "line 2: Transaction A:-9223372036854775808 B:+1: change -9223372036854775808 is below \
         -9223372036854775807"
    );
}
