//! Unit tests of the resolver loop's policy: retry pace, give-up, batching, back-pressure,
//! shutdown and topology refresh. The world is a `Script` (an [`OwnerLookup`] that answers as
//! told and writes down what it was asked), never the kernel. The loop runs on the test's
//! thread or on a thread of its own.
//!
//! Time: [`Retries`] takes `now`, so its tests drive a clock of their own and assert exact
//! paces. The loop itself runs on real time, on a loaded machine: its tests assert orderings,
//! counts, and bounds that only a wait's lower bound guarantees (a wait lasts at least what was
//! asked; a busy machine only makes it longer), never that a thread ran within so long.

use super::*;
use crate::net::types::Owner;
use crate::supervise::ThreadBoard;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;

/// How long a test waits for what must happen before calling it a failure: only reached when
/// the loop is wrong (or the machine stalled for this long).
const PATIENCE: Duration = Duration::from_secs(30);

type Replies = (
    Sender<(FlowKey, Resolution)>,
    Receiver<(FlowKey, Resolution)>,
);

/// Flow number `n`: its local port.
fn flow(n: u16) -> FlowKey {
    FlowKey {
        netns: NetnsId::HOST,
        transport: Transport::Tcp,
        local: SocketAddr::from(([10, 0, 0, 1], n)),
        remote: SocketAddr::from(([10, 0, 0, 2], 443)),
    }
}

fn number(key: &FlowKey) -> u16 {
    key.local.port()
}

/// The resolver thread's registration, on a board of its own.
fn test_token() -> ThreadToken {
    ThreadBoard::new().register("resolver")
}

fn owner(n: u16) -> Owner {
    Owner {
        pid: 1000 + u32::from(n),
        starttime: 42,
    }
}

fn lookup(n: u16, reply: &Sender<(FlowKey, Resolution)>) -> Request {
    Request::Lookup {
        key: flow(n),
        received: false,
        opens: false,
        reply: reply.clone(),
    }
}

fn pending(n: u16, reply: &Sender<(FlowKey, Resolution)>, first_asked: Instant) -> Pending {
    Pending {
        key: flow(n),
        received: false,
        opens: false,
        reply: reply.clone(),
        first_asked: Asked {
            at: first_asked,
            ns: 0,
        },
    }
}

/// What the loop did to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Did {
    Round,
    Ask(u16),
    Refresh,
}

type Answers = Box<dyn FnMut(u16) -> Answer + Send>;
type OnRound = Box<dyn FnMut(usize) + Send>;

/// A world that answers as its script says and writes down, with the time, what it was asked.
struct Script {
    answer: Answers,
    /// Called as each round begins, with its number (from 1), before the round waits: a test
    /// sends requests or sets `stop` here, between two of the loop's steps.
    on_round: OnRound,
    rounds: usize,
    did: Vec<(Instant, Did)>,
    /// Told of everything done, as it is done, for a test that waits for something.
    tell: Option<Sender<Did>>,
}

impl Script {
    fn new(answer: impl FnMut(u16) -> Answer + Send + 'static) -> Script {
        Script {
            answer: Box::new(answer),
            on_round: Box::new(|_| {}),
            rounds: 0,
            did: Vec::new(),
            tell: None,
        }
    }

    fn telling(mut self, tell: Sender<Did>) -> Script {
        self.tell = Some(tell);
        self
    }

    fn record(&mut self, did: Did) {
        self.did.push((Instant::now(), did));
        if let Some(tell) = &self.tell {
            let _ = tell.send(did);
        }
    }

    /// When the world was asked to do `what`.
    fn times(&self, what: Did) -> Vec<Instant> {
        self.did
            .iter()
            .filter(|(_, did)| *did == what)
            .map(|(at, _)| *at)
            .collect()
    }

    fn on_round(mut self, on_round: impl FnMut(usize) + Send + 'static) -> Script {
        self.on_round = Box::new(on_round);
        self
    }

    fn asks(&self) -> Vec<u16> {
        self.did
            .iter()
            .filter_map(|(_, did)| match did {
                Did::Ask(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// What each round did, round 1 first (the `Round` marks left out).
    fn rounds(&self) -> Vec<Vec<Did>> {
        let mut rounds: Vec<Vec<Did>> = Vec::new();
        for (_, did) in &self.did {
            match did {
                Did::Round => rounds.push(Vec::new()),
                other => rounds
                    .last_mut()
                    .expect("the world is asked within rounds")
                    .push(*other),
            }
        }
        rounds
    }
}

impl OwnerLookup for Script {
    fn round_begins(&mut self, _negative_hits: u64, _over_budget: u64) {
        self.rounds += 1;
        self.record(Did::Round);
        (self.on_round)(self.rounds);
    }

    fn owner(&mut self, key: &FlowKey, _opens: bool, _asked: Asked) -> Answer {
        let n = number(key);
        self.record(Did::Ask(n));
        (self.answer)(n)
    }

    fn refresh_topology(&mut self) {
        self.record(Did::Refresh);
    }
}

/// Runs the loop on a thread of its own; the script comes back on the channel when it returns.
fn spawn(mut script: Script, queue: Receiver<Request>, stop: &Arc<AtomicBool>) -> Receiver<Script> {
    let stop = Arc::clone(stop);
    let (done, returned) = mpsc::channel();
    std::thread::spawn(move || {
        run(&queue, &mut script, &stop, Instant::now(), &test_token());
        let _ = done.send(script);
    });
    returned
}

// --- Retries, on a clock of the test's own ---

/// (1) A flow answered "retry" is asked again after 500 µs waits during its first 50 ms, then
/// every 20 ms, and (2) is answered unattributed, once, at the first asking past 2 s.
#[test]
fn retry_pace_is_fast_for_50_ms_then_slow_until_given_up() {
    let t0 = Instant::now();
    let (reply, replies): Replies = mpsc::channel();
    let mut retries = Retries::default();
    assert_eq!(retries.wait(t0), IDLE_WAIT, "nothing to retry");
    // The flow was asked when it came (t0) and the answer was "retry".
    retries.settle(pending(1, &reply, t0), Answer::Retry, t0);
    drop(reply);
    // Rounds as `run` makes them, the waits taken on the test's clock.
    let mut now = t0;
    let mut asked = Vec::new();
    loop {
        now += retries.wait(now);
        let due = retries.due();
        if due.is_empty() {
            break;
        }
        for p in due {
            asked.push(now - t0);
            retries.settle(p, Answer::Retry, now);
        }
    }
    let ms = Duration::from_millis;
    let fast: Vec<Duration> = (1..=100).map(|i| RETRY_FAST * i).collect();
    // The last asking in the fast pace is at 50 ms; then 70, 90, ... 1990 ms (still under
    // 2 s: kept), 2010 ms (past 2 s: given up).
    let slow: Vec<Duration> = (1..=98).map(|i| ms(50) + RETRY_SLOW * i).collect();
    assert_eq!(asked, [fast, slow].concat());
    assert_eq!(asked.last(), Some(&ms(2010)));
    assert!(retries.waiting.is_empty());
    assert_eq!(retries.wait(now), IDLE_WAIT);
    let answers: Vec<_> = replies.try_iter().collect();
    assert_eq!(answers, [(flow(1), Resolution::Lost)]);
    // Nothing holds the reply channel any more: no second answer can come.
    assert_eq!(replies.try_recv(), Err(mpsc::TryRecvError::Disconnected));
}

/// The pace follows the youngest flow waiting: one flow in its first 50 ms keeps the rounds
/// fast for all.
#[test]
fn wait_is_fast_while_any_flow_is_young() {
    let t0 = Instant::now();
    let (reply, _replies): Replies = mpsc::channel();
    let mut retries = Retries::default();
    retries.settle(pending(1, &reply, t0), Answer::Retry, t0);
    assert_eq!(retries.wait(t0 + RETRY_FAST_FOR / 2), RETRY_FAST);
    assert_eq!(
        retries.wait(t0 + RETRY_FAST_FOR - Duration::from_nanos(1)),
        RETRY_FAST
    );
    assert_eq!(retries.wait(t0 + RETRY_FAST_FOR), RETRY_SLOW);
    let t1 = t0 + Duration::from_millis(500);
    retries.settle(pending(2, &reply, t1), Answer::Retry, t1);
    assert_eq!(retries.wait(t1 + Duration::from_millis(10)), RETRY_FAST);
    assert_eq!(retries.wait(t1 + RETRY_FAST_FOR), RETRY_SLOW);
}

/// (2) Give-up: "retry" keeps a flow until it has been asked for RETRY_FOR, then it is
/// answered unattributed exactly once; a final answer is sent as found, however late.
#[test]
fn given_up_once_retry_for_has_passed() {
    let t0 = Instant::now();
    let (reply, replies): Replies = mpsc::channel();
    let mut retries = Retries::default();
    retries.settle(
        pending(1, &reply, t0),
        Answer::Retry,
        t0 + RETRY_FOR - Duration::from_nanos(1),
    );
    assert_eq!(replies.try_recv(), Err(mpsc::TryRecvError::Empty), "kept");
    let due = retries.due();
    assert_eq!(due.len(), 1);
    for p in due {
        retries.settle(p, Answer::Retry, t0 + RETRY_FOR);
    }
    assert!(retries.waiting.is_empty());
    assert!(retries.due().is_empty());
    // Found late, but found: the answer stands.
    retries.settle(
        pending(2, &reply, t0),
        Answer::Final(Resolution::Process(owner(2))),
        t0 + RETRY_FOR * 3,
    );
    drop(reply);
    let answers: Vec<_> = replies.iter().collect();
    assert_eq!(
        answers,
        [
            (flow(1), Resolution::Lost),
            (flow(2), Resolution::Process(owner(2)))
        ]
    );
}

/// (3) With 1,000 flows waiting, a round takes the 256 that waited longest; those asked go
/// to the back, so every flow is asked again within four rounds.
#[test]
fn a_round_retries_at_most_256_longest_waiting_first() {
    let t0 = Instant::now();
    let (reply, _replies): Replies = mpsc::channel();
    let mut retries = Retries::default();
    for n in 0..1000 {
        retries.settle(pending(n, &reply, t0), Answer::Retry, t0);
    }
    let mut rounds: Vec<Vec<u16>> = Vec::new();
    for _ in 0..4 {
        let due = retries.due();
        rounds.push(due.iter().map(|p| number(&p.key)).collect());
        for p in due {
            retries.settle(p, Answer::Retry, t0);
        }
    }
    let range = |r: std::ops::Range<u16>| r.collect::<Vec<u16>>();
    assert_eq!(rounds[0], range(0..256));
    assert_eq!(rounds[1], range(256..512));
    assert_eq!(rounds[2], range(512..768));
    assert_eq!(rounds[3], [range(768..1000), range(0..24)].concat());
    assert_eq!(retries.waiting.len(), 1000, "none lost, none doubled");
}

// --- The loop, on real time ---

/// (1, 2) The loop keeps the pace and gives up: a flow that is always "retry" is asked at
/// least twice, never sooner than RETRY_FAST after the last asking, never sooner than
/// RETRY_SLOW once it is RETRY_FAST_FOR old, and is answered unattributed exactly once, no
/// sooner than RETRY_FOR after it was sent.
#[test]
fn the_loop_retries_at_the_pace_then_gives_up_once() {
    let (requests, queue) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let returned = spawn(Script::new(|_| Answer::Retry), queue, &stop);
    let (reply, replies): Replies = mpsc::channel();
    let sent = Instant::now();
    requests.send(lookup(1, &reply)).expect("loop runs");
    drop(reply);
    let answer = replies.recv_timeout(PATIENCE).expect("an answer");
    assert_eq!(answer, (flow(1), Resolution::Lost));
    assert!(sent.elapsed() >= RETRY_FOR, "{:?}", sent.elapsed());
    // The loop keeps no copy of the reply channel: the flow will not be answered again.
    assert_eq!(
        replies.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Disconnected)
    );
    stop.store(true, Ordering::Relaxed);
    let script = returned.recv_timeout(PATIENCE).expect("the loop returns");
    let asked = script.times(Did::Ask(1));
    assert_eq!(asked.len(), script.asks().len(), "only flow 1 was asked");
    assert!(asked.len() >= 2, "asked again before giving up");
    // Waits are never shorter than asked: at most one asking per RETRY_FAST in the first
    // RETRY_FAST_FOR, one per RETRY_SLOW after, and the asking that gives up.
    let most = 2
        + RETRY_FAST_FOR.as_micros() / RETRY_FAST.as_micros()
        + RETRY_FOR.as_micros() / RETRY_SLOW.as_micros();
    assert!(asked.len() as u128 <= most, "{} askings", asked.len());
    for pair in asked.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= RETRY_FAST, "{gap:?}");
        if pair[0] - asked[0] >= RETRY_FAST_FOR {
            assert!(gap >= RETRY_SLOW, "{gap:?} at {:?}", pair[0] - asked[0]);
        }
    }
}

/// Flows that come while 1,000 others wait to be retried.
const LATE: std::ops::Range<u16> = 1000..1010;

/// (3) 1,000 flows, all "retry": the round that takes them asks all of them (they are new);
/// later rounds ask at most 256 retries, and new lookups that come meanwhile are asked in the
/// round they come, after its retries, not behind the flows still waiting.
#[test]
fn new_lookups_are_never_held_back_behind_retries() {
    let (requests, queue) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (reply, replies): Replies = mpsc::channel();
    for n in 0..1000 {
        requests.send(lookup(n, &reply)).expect("queued");
    }
    let mut script = Script::new(|_| Answer::Retry).on_round({
        let (requests, reply, stop) = (requests.clone(), reply.clone(), Arc::clone(&stop));
        move |round| match round {
            3 => LATE.for_each(|n| requests.send(lookup(n, &reply)).expect("queued")),
            6 => stop.store(true, Ordering::Relaxed),
            _ => {}
        }
    });
    run(&queue, &mut script, &stop, Instant::now(), &test_token());
    drop((requests, reply));
    let rounds: Vec<Vec<u16>> = script
        .rounds()
        .iter()
        .map(|round| {
            round
                .iter()
                .filter_map(|did| match did {
                    Did::Ask(n) => Some(*n),
                    _ => None,
                })
                .collect()
        })
        .collect();
    assert_eq!(rounds.len(), 6);
    assert_eq!(
        rounds[0],
        (0..1000).collect::<Vec<u16>>(),
        "all new: all asked"
    );
    for (i, round) in rounds.iter().enumerate().skip(1) {
        let retried = round.iter().filter(|n| **n < 1000).count();
        assert!(
            retried <= MAX_RETRIES_PER_ROUND,
            "round {}: {retried}",
            i + 1
        );
    }
    let (retried, new) = rounds[2].split_at(rounds[2].len() - LATE.len());
    assert_eq!(
        new,
        LATE.collect::<Vec<u16>>(),
        "asked in the round they came"
    );
    assert!(retried.iter().all(|n| *n < 1000));
    // A flow is given up only after RETRY_FOR (2 s) of rounds that wait 500 µs: if none was,
    // the rounds took exactly 256 retries each, longest waiting first.
    if replies.try_iter().next().is_none() {
        assert_eq!(rounds[1], (0..256).collect::<Vec<u16>>());
        assert_eq!(retried, (256..512).collect::<Vec<u16>>());
        assert_eq!(rounds[3].len(), MAX_RETRIES_PER_ROUND);
    }
}

/// (4) Requests come faster than answers: 600 lookups from three capture threads queue up
/// while the first lookup is held; every one is answered, once, on the channel of the thread
/// that asked, with what the world found (some after a retry).
#[test]
fn lookups_queued_during_a_slow_lookup_are_all_answered_once_to_their_asker() {
    /// What the world finds for flow `n` (after one "retry" when `n % 4 == 0`).
    fn found(n: u16) -> Resolution {
        match n % 5 {
            0 | 1 => Resolution::Process(owner(n)),
            2 => Resolution::Forwarded,
            _ => Resolution::Unattributed,
        }
    }
    let (requests, queue) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (in_flight, flight) = mpsc::channel();
    let (gate, gate_opens) = mpsc::channel::<()>();
    let mut retried = std::collections::HashSet::new();
    let script = Script::new(move |n| {
        if n == 0 && retried.is_empty() {
            let _ = in_flight.send(());
            // Held until every other lookup is queued (or the test is gone).
            let _ = gate_opens.recv();
        }
        if n % 4 == 0 && retried.insert(n) {
            Answer::Retry
        } else {
            Answer::Final(found(n))
        }
    });
    let returned = spawn(script, queue, &stop);
    let threads: Vec<Replies> = (0..3).map(|_| mpsc::channel()).collect();
    let asker = |n: u16| &threads[usize::from(n) % 3];
    requests.send(lookup(0, &asker(0).0)).expect("loop runs");
    flight
        .recv_timeout(PATIENCE)
        .expect("the first lookup starts");
    for n in 1..600 {
        requests.send(lookup(n, &asker(n).0)).expect("loop runs");
    }
    gate.send(()).expect("the lookup waits");
    let mut answered: HashMap<u16, usize> = HashMap::new();
    for (i, (_, replies)) in threads.iter().enumerate() {
        for _ in 0..200 {
            let (key, resolution) = replies.recv_timeout(PATIENCE).expect("an answer");
            let n = number(&key);
            assert_eq!(
                usize::from(n) % 3,
                i,
                "flow {n} answered to the wrong thread"
            );
            assert_eq!(resolution, found(n), "flow {n}");
            *answered.entry(n).or_default() += 1;
        }
    }
    assert_eq!(answered.len(), 600);
    // Every sender gone and nothing waiting: the loop returns.
    drop(requests);
    let script = returned.recv_timeout(PATIENCE).expect("the loop returns");
    assert_eq!(script.asks().len(), 600 + 150, "one retry per fourth flow");
    for (sender, replies) in threads {
        drop(sender);
        assert_eq!(replies.try_iter().count(), 0, "answered twice");
    }
}

/// (5) `stop` set while a lookup is held: the loop finishes that lookup, answers it, and
/// returns without another round, leaving the lookups that came meanwhile unasked.
#[test]
fn stop_during_a_lookup_returns_after_it_and_asks_nothing_more() {
    let (requests, queue) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (in_flight, flight) = mpsc::channel();
    let (gate, gate_opens) = mpsc::channel::<()>();
    let script = Script::new(move |n| {
        let _ = in_flight.send(n);
        let _ = gate_opens.recv();
        Answer::Final(Resolution::Process(owner(n)))
    });
    let returned = spawn(script, queue, &stop);
    let (reply, replies): Replies = mpsc::channel();
    requests.send(lookup(1, &reply)).expect("loop runs");
    assert_eq!(flight.recv_timeout(PATIENCE), Ok(1));
    stop.store(true, Ordering::Relaxed);
    requests.send(lookup(2, &reply)).expect("queued");
    requests.send(lookup(3, &reply)).expect("queued");
    gate.send(()).expect("the lookup waits");
    let script = returned.recv_timeout(PATIENCE).expect("the loop returns");
    assert_eq!(script.asks(), [1]);
    assert_eq!(
        script.did.last().map(|(_, did)| *did),
        Some(Did::Ask(1)),
        "no round after the stop"
    );
    assert_eq!(
        replies.try_recv(),
        Ok((flow(1), Resolution::Process(owner(1))))
    );
    // `requests` is still held: it was `stop`, not the senders' going, that ended the loop.
    drop(requests);
}

/// (5) Every sender gone: the loop returns at once if nothing waits, and only after the flows
/// still retried are settled otherwise (nothing is lost).
#[test]
fn returns_when_every_sender_is_gone_and_no_retry_waits() {
    let stop = Arc::new(AtomicBool::new(false));

    let (requests, queue) = mpsc::channel::<Request>();
    drop(requests);
    let returned = spawn(Script::new(|_| Answer::Retry), queue, &stop);
    let script = returned.recv_timeout(PATIENCE).expect("the loop returns");
    assert!(script.asks().is_empty());

    let (requests, queue) = mpsc::channel();
    let (reply, replies): Replies = mpsc::channel();
    requests.send(lookup(1, &reply)).expect("queued");
    drop((requests, reply));
    let mut asked = 0;
    let script = Script::new(move |n| {
        asked += 1;
        if asked < 4 {
            Answer::Retry
        } else {
            Answer::Final(Resolution::Process(owner(n)))
        }
    });
    let returned = spawn(script, queue, &stop);
    let script = returned.recv_timeout(PATIENCE).expect("the loop returns");
    assert_eq!(script.asks(), [1, 1, 1, 1]);
    let answers: Vec<_> = replies.iter().collect();
    assert_eq!(answers, [(flow(1), Resolution::Process(owner(1)))]);
}

/// (6) A topology request makes the round read the topology before it asks anything, even
/// a lookup that came before the request.
#[test]
fn a_topology_request_refreshes_before_the_rounds_lookups() {
    let (requests, queue) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (reply, _replies): Replies = mpsc::channel();
    let answer = |n| Answer::Final(Resolution::Process(owner(n)));
    let mut script = Script::new(answer).on_round({
        let (requests, stop) = (requests.clone(), Arc::clone(&stop));
        move |round| match round {
            2 => {
                requests.send(lookup(7, &reply)).expect("queued");
                requests.send(Request::Topology).expect("queued");
            }
            3 => stop.store(true, Ordering::Relaxed),
            _ => {}
        }
    });
    run(&queue, &mut script, &stop, Instant::now(), &test_token());
    drop(requests);
    let rounds = script.rounds();
    assert_eq!(rounds.len(), 3);
    assert_eq!(rounds[1], [Did::Refresh, Did::Ask(7)]);
}

/// (6) With no request, the topology is read again every TOPOLOGY_REFRESH, and not sooner.
#[test]
fn topology_is_read_again_every_second() {
    let (requests, queue) = mpsc::channel::<Request>();
    let stop = Arc::new(AtomicBool::new(false));
    let (tell, told) = mpsc::channel();
    let started = Instant::now();
    let returned = spawn(Script::new(|_| Answer::Retry).telling(tell), queue, &stop);
    let mut readings = 0;
    while readings < 2 {
        if told.recv_timeout(PATIENCE).expect("rounds go on") == Did::Refresh {
            readings += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let script = returned.recv_timeout(PATIENCE).expect("the loop returns");
    drop(requests);
    let read = script.times(Did::Refresh);
    assert!(read.len() >= 2, "{} readings", read.len());
    assert!(
        read[0] - started >= TOPOLOGY_REFRESH,
        "{:?}",
        read[0] - started
    );
    for pair in read.windows(2) {
        assert!(
            pair[1] - pair[0] >= TOPOLOGY_REFRESH,
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

// --- Bounds and what is remembered ---

/// A lookup of flow `n` to the local endpoint 10.0.0.1:53 from remote port `n`.
fn to_endpoint(n: u16, received: bool, reply: &Sender<(FlowKey, Resolution)>) -> Request {
    Request::Lookup {
        key: FlowKey {
            remote: SocketAddr::from(([10, 0, 0, 2], n)),
            local: SocketAddr::from(([10, 0, 0, 1], 53)),
            ..flow(n)
        },
        received,
        opens: false,
        reply: reply.clone(),
    }
}

/// (1) A received flow to an endpoint just found with no socket is answered `Lost` without
/// asking the world; (2) a flow *sent* from that endpoint is asked all the same (its socket
/// existed); (3) a socket the world cannot find in time is not remembered as none.
#[test]
fn flows_to_an_endpoint_with_no_socket_are_answered_from_memory_when_received() {
    let (requests, queue) = mpsc::channel();
    let (reply, replies): Replies = mpsc::channel();
    for n in 1..=5 {
        requests.send(to_endpoint(n, true, &reply)).unwrap();
    }
    requests.send(to_endpoint(6, false, &reply)).unwrap();
    drop((requests, reply));
    let stop = AtomicBool::new(false);
    let mut script = Script::new(|_| Answer::NoSocket);
    run(&queue, &mut script, &stop, Instant::now(), &test_token());
    assert_eq!(
        script.asks().len(),
        2,
        "the first received flow and the sent one"
    );
    let answers: Vec<Resolution> = replies.iter().map(|(_, r)| r).collect();
    assert_eq!(
        answers,
        [
            Resolution::Unattributed,
            Resolution::Lost,
            Resolution::Lost,
            Resolution::Lost,
            Resolution::Lost,
            Resolution::Unattributed,
        ]
    );

    let (requests, queue) = mpsc::channel();
    let (reply, replies): Replies = mpsc::channel();
    for n in 1..=3 {
        requests.send(to_endpoint(n, true, &reply)).unwrap();
    }
    drop((requests, reply));
    let mut script = Script::new(|_| Answer::Final(Resolution::Unattributed));
    run(&queue, &mut script, &stop, Instant::now(), &test_token());
    assert_eq!(script.asks().len(), 3, "only \"no socket\" is remembered");
    assert_eq!(replies.iter().count(), 3);
}

/// A flood queued at once is taken in rounds of at most `MAX_LOOKUPS_PER_ROUND` (so the
/// topology and the stop flag are still looked at), and every lookup is answered once.
#[test]
fn a_flood_of_lookups_is_taken_in_bounded_rounds() {
    let (requests, queue) = mpsc::channel();
    let (reply, replies): Replies = mpsc::channel();
    let n = 10_000u16;
    for i in 1..=n {
        requests.send(lookup(i, &reply)).unwrap();
    }
    drop((requests, reply));
    let stop = AtomicBool::new(false);
    let mut script = Script::new(|_| Answer::Final(Resolution::Unattributed));
    run(&queue, &mut script, &stop, Instant::now(), &test_token());
    let sizes: Vec<usize> = script.rounds().iter().map(Vec::len).collect();
    assert!(
        sizes.iter().all(|&s| s <= MAX_LOOKUPS_PER_ROUND),
        "{sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<usize>(), usize::from(n));
    let mut answered: Vec<u16> = replies.iter().map(|(k, _)| number(&k)).collect();
    answered.sort_unstable();
    assert_eq!(answered, (1..=n).collect::<Vec<_>>());
}

/// Beyond `MAX_WAITING_RETRIES` waiting, a flow not found at once is answered `Lost` at once
/// instead of waiting its turn: the waiting retries are bounded too.
#[test]
fn retries_beyond_the_bound_are_answered_lost_at_once() {
    let t0 = Instant::now();
    let (reply, replies): Replies = mpsc::channel();
    let mut retries = Retries::default();
    for n in 0..MAX_WAITING_RETRIES {
        retries.settle(pending(n as u16, &reply, t0), Answer::Retry, t0);
    }
    assert!(replies.try_recv().is_err(), "all of them wait");
    retries.settle(pending(7, &reply, t0), Answer::Retry, t0);
    assert_eq!(retries.waiting.len(), MAX_WAITING_RETRIES);
    assert_eq!(replies.try_recv(), Ok((flow(7), Resolution::Lost)));
}

/// The budget: a second's worth of new lookups at once, then as time refills it; what is over
/// is answered `Lost` without asking (the flow table asks again if the flow goes on).
#[test]
fn new_lookups_beyond_the_budget_are_answered_lost_without_asking() {
    let t0 = Instant::now();
    let mut budget = Budget::full(t0);
    let granted = (0..30_000).filter(|_| budget.take(t0)).count();
    assert_eq!(granted as f64, LOOKUPS_PER_SECOND);
    assert!(!budget.take(t0));
    let later = t0 + Duration::from_millis(100);
    let refilled = (0..30_000).filter(|_| budget.take(later)).count();
    assert_eq!(refilled as f64, LOOKUPS_PER_SECOND / 10.0);
    let much_later = later + Duration::from_secs(60);
    let capped = (0..30_000).filter(|_| budget.take(much_later)).count();
    assert_eq!(
        capped as f64, LOOKUPS_PER_SECOND,
        "a second's worth at most"
    );

    // In the loop: 25,000 queued at once. The world is asked for at most the budget and
    // what time refilled meanwhile; every lookup is answered once.
    let (requests, queue) = mpsc::channel();
    let (reply, replies): Replies = mpsc::channel();
    let n = 25_000u16;
    for i in 1..=n {
        requests.send(lookup(i, &reply)).unwrap();
    }
    drop((requests, reply));
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut script = Script::new(|_| Answer::Final(Resolution::Unattributed));
    run(&queue, &mut script, &stop, Instant::now(), &test_token());
    let refill = started.elapsed().as_secs_f64() * LOOKUPS_PER_SECOND;
    let asked = script.asks().len() as f64;
    assert!(
        asked >= LOOKUPS_PER_SECOND && asked <= LOOKUPS_PER_SECOND + refill + 1.0,
        "{asked} asked, {refill:.0} refilled"
    );
    let answers: Vec<Resolution> = replies.iter().map(|(_, r)| r).collect();
    assert_eq!(answers.len(), usize::from(n));
    let lost = answers.iter().filter(|r| **r == Resolution::Lost).count() as f64;
    assert_eq!(lost + asked, f64::from(n));
}
