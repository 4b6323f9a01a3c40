//! Unit tests of [`super`] (users): what is cached, what is asked again, and when.

use super::*;
use std::cell::RefCell;

#[test]
fn root_is_root_and_unknown_is_none() {
    let mut users = UserNames::default();
    assert_eq!(users.name(0), Some("root"));
    assert_eq!(users.name(4_000_000_000), None);
    assert_eq!(users.name(0), Some("root"));
}

thread_local! {
    /// The scripted answers of [`scripted`], and the uids it was asked, of this test's thread.
    static SCRIPT: RefCell<(Vec<Lookup>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A user database that answers from this thread's script, first answer first; the last one
/// repeats.
fn scripted(uid: u32) -> Lookup {
    SCRIPT.with(|s| {
        let mut s = s.borrow_mut();
        s.1.push(uid);
        if s.0.len() > 1 {
            s.0.remove(0)
        } else {
            s.0.first().cloned().unwrap_or(Lookup::NoSuchUser)
        }
    })
}

fn script(answers: Vec<Lookup>) -> UserNames {
    SCRIPT.with(|s| *s.borrow_mut() = (answers, Vec::new()));
    UserNames::with_lookup(scripted)
}

fn asked() -> usize {
    SCRIPT.with(|s| s.borrow().1.len())
}

#[test]
fn a_failed_lookup_is_asked_again_later_and_then_kept() {
    // sssd not up yet: EAGAIN twice, then the name.
    let mut users = script(vec![
        Lookup::Failed(libc::EAGAIN),
        Lookup::Failed(libc::EAGAIN),
        Lookup::Found("alice".into()),
    ]);
    let start = Instant::now();
    assert_eq!(users.name_at(1000, start), None);
    assert_eq!(asked(), 1);
    // Not asked again before the first retry is due, however many processes ask.
    for _ in 0..100 {
        assert_eq!(users.name_at(1000, start + RETRY_FIRST / 2), None);
    }
    assert_eq!(asked(), 1);
    assert_eq!(users.name_at(1000, start + RETRY_FIRST), None);
    assert_eq!(asked(), 2);
    // The interval doubled: not yet at RETRY_FIRST after the second failure...
    let second = start + RETRY_FIRST;
    assert_eq!(users.name_at(1000, second + RETRY_FIRST), None);
    assert_eq!(asked(), 2);
    // ...but at twice that.
    assert_eq!(users.name_at(1000, second + RETRY_FIRST * 2), Some("alice"));
    assert_eq!(asked(), 3);
    // A name is kept for good.
    let much_later = start + NO_SUCH_USER_FOR * 10;
    assert_eq!(users.name_at(1000, much_later), Some("alice"));
    assert_eq!(asked(), 3);
}

#[test]
fn retries_of_a_database_that_stays_down_are_bounded() {
    let mut users = script(vec![Lookup::Failed(libc::EIO)]);
    let mut now = Instant::now();
    users.name_at(7, now);
    // An hour of asking every second: the retries double to RETRY_MAX and stay there.
    for _ in 0..3600 {
        now += Duration::from_secs(1);
        users.name_at(7, now);
    }
    let at_most = 3600 / RETRY_MAX.as_secs() as usize + 8;
    assert!(asked() <= at_most, "{} lookups in an hour", asked());
    assert!(
        asked() >= 3600 / RETRY_MAX.as_secs() as usize,
        "{}",
        asked()
    );
}

#[test]
fn no_such_user_is_cached_for_a_while_only() {
    let mut users = script(vec![Lookup::NoSuchUser, Lookup::Found("bob".into())]);
    let start = Instant::now();
    assert_eq!(users.name_at(2000, start), None);
    assert_eq!(users.name_at(2000, start + NO_SUCH_USER_FOR / 2), None);
    assert_eq!(asked(), 1);
    // A user created later is found once the negative answer has aged.
    assert_eq!(users.name_at(2000, start + NO_SUCH_USER_FOR), Some("bob"));
    assert_eq!(asked(), 2);
}

#[test]
fn the_cache_is_bounded() {
    let mut users = script(vec![Lookup::NoSuchUser]);
    let now = Instant::now();
    for uid in 0..(MAX_ENTRIES as u32 * 3) {
        users.name_at(uid, now);
    }
    assert!(users.cache.len() <= MAX_ENTRIES, "{}", users.cache.len());
}
