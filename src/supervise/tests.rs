//! The board's liveness, the guard's counting and its once-per-kind log line.

use super::*;
use std::sync::mpsc;
use std::time::Duration;

fn health_of(board: &ThreadBoard, name: &str) -> ThreadHealth {
    board
        .health()
        .into_iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("{name} not registered: {:?}", board.health()))
}

#[test]
fn a_token_is_alive_until_dropped() {
    let board = ThreadBoard::new();
    let token = board.register("sampler");
    assert_eq!(
        board.health(),
        vec![ThreadHealth {
            name: "sampler".into(),
            alive: true,
            panics: 0
        }]
    );
    drop(token);
    assert!(!health_of(&board, "sampler").alive);
}

#[test]
fn guard_returns_the_value_or_none_and_counts_panics() {
    let board = ThreadBoard::new();
    let token = board.register("resolver");
    assert_eq!(guard(&token, "a resolver round", || 7), Some(7));
    assert_eq!(
        guard(&token, "a resolver round", || -> u32 { panic!("boom") }),
        None
    );
    let message = String::from("owned message");
    assert_eq!(
        guard(&token, "a resolver round", move || -> u32 {
            panic!("{message}")
        }),
        None
    );
    let h = health_of(&board, "resolver");
    assert!(h.alive, "a caught panic leaves the thread alive");
    assert_eq!(h.panics, 2);
    assert_eq!(token.panics(), 2);
}

#[test]
fn each_kind_is_said_once_with_thread_doing_message_and_place() {
    let board = ThreadBoard::new();
    let token = board.register("capture_lo");
    let first = token.caught("a packet", "index out of bounds", Some("x.rs:1:2"), true);
    let line = first.expect("the first panic of a kind is said");
    for part in [
        "capture_lo",
        "a packet",
        "index out of bounds",
        "x.rs:1:2",
        "goes on",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    assert_eq!(token.caught("a packet", "again", None, true), None);
    assert!(
        token.caught("housekeeping", "other", None, true).is_some(),
        "another kind is said too"
    );
    assert_eq!(token.caught("housekeeping", "other", None, true), None);
    assert_eq!(token.panics(), 4, "every panic is counted");
}

#[test]
fn kinds_said_are_bounded() {
    let board = ThreadBoard::new();
    let token = board.register("sampler");
    let said = (0..100)
        .filter(|i| {
            token
                .caught(&format!("kind {i}"), "m", None, true)
                .is_some()
        })
        .count();
    assert_eq!(said, MAX_KINDS_LOGGED);
    assert_eq!(token.panics(), 100);
}

#[test]
fn the_panic_message_is_read_from_str_and_string_payloads() {
    assert_eq!(panic_message(&"static"), "static");
    assert_eq!(panic_message(&String::from("owned")), "owned");
    assert_eq!(panic_message(&42u8), "(a panic without a message)");
}

#[test]
fn a_spawned_thread_is_alive_while_it_runs_and_not_after_it_returns() {
    let board = ThreadBoard::new();
    let (release, wait) = mpsc::channel::<()>();
    let (name_tx, name_rx) = mpsc::channel();
    let handle = spawn(&board, "capture_eth0", move |token| {
        let _ = name_tx.send((
            token.name().to_string(),
            std::thread::current().name().map(str::to_string),
        ));
        let _ = wait.recv_timeout(Duration::from_secs(30));
    })
    .unwrap();
    let (name, os_name) = name_rx.recv().unwrap();
    assert_eq!(name, "capture_eth0");
    assert_eq!(os_name.as_deref(), Some("capture-eth0"));
    assert!(health_of(&board, "capture_eth0").alive);
    release.send(()).unwrap();
    handle.join().unwrap();
    assert!(!health_of(&board, "capture_eth0").alive);
}

#[test]
fn a_panic_escaping_the_body_is_caught_counted_and_marks_the_thread_dead() {
    let board = ThreadBoard::new();
    let handle = spawn(&board, "resolver", |token| {
        // A guarded unit's panic leaves it going ...
        guard(token, "a resolver round", || panic!("first"));
        // ... an unguarded one ends it.
        panic!("escaped");
    })
    .unwrap();
    assert!(
        handle.join().is_ok(),
        "the backstop catches it: join sees no panic"
    );
    let h = health_of(&board, "resolver");
    assert!(!h.alive);
    assert_eq!(h.panics, 2);
}

#[test]
fn a_name_whose_thread_ended_is_taken_over_with_its_count() {
    let board = ThreadBoard::new();
    let first = board.register("sampler");
    let _ = guard(&first, "a sampler cycle", || panic!("x"));
    drop(first);
    let _second = board.register("sampler");
    assert_eq!(
        board.health(),
        vec![ThreadHealth {
            name: "sampler".into(),
            alive: true,
            panics: 1
        }]
    );
}

#[test]
fn os_thread_names_fit_the_kernel() {
    assert_eq!(os_thread_name("sampler"), "capture-sampler");
    assert_eq!(os_thread_name("resolver"), "capture-resolve");
    assert_eq!(os_thread_name("capture_lo"), "capture-lo");
    assert_eq!(os_thread_name("capture_enp0s31f6"), "capture-enp0s31");
    assert_eq!(os_thread_name("capture_ééééééé"), "capture-ééé");
}
