//! Test-only fault injection: [`inject`] marks a point in a thread's work where the tests of
//! issue 14 make the plugin panic, to show that the thread survives it. Called by the thread
//! that does the work (sampler, resolver, capture threads, exit thread). [`lookup_fails`] makes the
//! resolver's first lookups fail for a while, to show that a flow whose owner was not found in
//! time is credited to it later (second chances).
//!
//! Without the cargo feature `fault-injection` (every release build: the packaged `.so`
//! never contains it) [`inject`] is an empty inline function and [`lookup_fails`] a constant
//! `false`. With it, the environment variable `CAPTURE_INJECT_FAULTS`, read once, lists
//! `point@N` items separated by commas: `sampler-cycle@3,resolver-round@5` panics at the 3rd
//! call of `sampler-cycle` and the 5th of `resolver-round`, once each, with a message naming
//! the point; `lookups-fail-ms@6000` makes every lookup fail for 6000 ms from the first one.
//!
//! Panic points: `sampler-cycle`, `resolver-round`, `capture-housekeeping`, `capture-packet`,
//! `exits-round`.
//! Other faults: `lookups-fail-ms`.

/// The item of the plan that makes lookups fail (`lookups-fail-ms@N`: for N ms).
#[cfg_attr(not(any(test, feature = "fault-injection")), allow(dead_code))]
const LOOKUPS_FAIL_MS: &str = "lookups-fail-ms";

/// A point where a test may inject a panic; nothing at all without `fault-injection`.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_point: &'static str) {}

/// A point where a test may inject a panic: panics at the Nth call of `point` when
/// `CAPTURE_INJECT_FAULTS` asks for it.
#[cfg(feature = "fault-injection")]
pub fn inject(point: &'static str) {
    plan().hit(point);
}

/// Whether a lookup of a flow's owner should fail (be answered "not found yet"); always
/// `false` without `fault-injection`.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn lookup_fails() -> bool {
    false
}

/// Whether a lookup of a flow's owner should fail (be answered "not found yet"): true while
/// less than N ms have passed since the first call when `CAPTURE_INJECT_FAULTS` holds
/// `lookups-fail-ms@N`.
#[cfg(feature = "fault-injection")]
pub fn lookup_fails() -> bool {
    plan().lookups_fail(std::time::Instant::now())
}

/// The plan of `CAPTURE_INJECT_FAULTS`, read once.
#[cfg(feature = "fault-injection")]
fn plan() -> &'static enabled::Plan {
    use std::sync::OnceLock;
    static PLAN: OnceLock<enabled::Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        enabled::Plan::parse(&std::env::var("CAPTURE_INJECT_FAULTS").unwrap_or_default())
    })
}

/// The plan read from the environment; parsed and counted in plain code so that it is
/// unit-tested with and without the feature.
#[cfg_attr(not(any(test, feature = "fault-injection")), allow(dead_code))]
mod enabled {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// Each point asked for, at which call it panics, and how many calls it has had; and when
    /// [`lookups_fail`](Plan::lookups_fail) was first asked.
    #[derive(Debug, Default)]
    pub struct Plan {
        pub(super) points: Vec<(String, u64, AtomicU64)>,
        first_lookup: OnceLock<Instant>,
    }

    impl Plan {
        /// `point@N[,point@N...]`; items that do not parse (no `@`, N not a positive
        /// number) are left out with a warning: a typo must not fail a test silently.
        pub fn parse(spec: &str) -> Plan {
            let mut points = Vec::new();
            for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let parsed = item
                    .split_once('@')
                    .and_then(|(point, n)| Some((point.trim(), n.trim().parse::<u64>().ok()?)))
                    .filter(|(point, n)| !point.is_empty() && *n > 0);
                match parsed {
                    Some((point, n)) => points.push((point.to_string(), n, AtomicU64::new(0))),
                    None => log::warn!(
                        "CAPTURE_INJECT_FAULTS: `{item}` is not `point@N` with N >= 1; left out"
                    ),
                }
            }
            Plan {
                points,
                first_lookup: OnceLock::new(),
            }
        }

        /// Counts a call of `point`; true when it is the call to panic at (once).
        pub fn due(&self, point: &str) -> bool {
            let mut due = false;
            for (name, at, calls) in &self.points {
                if name == point {
                    let call = calls.fetch_add(1, Ordering::Relaxed) + 1;
                    due |= call == *at;
                }
            }
            due
        }

        /// Counts a call of `point` and panics, naming it, when it is due.
        pub fn hit(&self, point: &str) {
            if self.due(point) {
                panic!("injected panic at `{point}` (CAPTURE_INJECT_FAULTS)");
            }
        }

        /// With `lookups-fail-ms@N` in the plan: true while `now` is less than N ms after the
        /// first call (whose `now` starts the count). False without it.
        pub fn lookups_fail(&self, now: Instant) -> bool {
            let Some(ms) = self
                .points
                .iter()
                .find(|(name, _, _)| name == super::LOOKUPS_FAIL_MS)
                .map(|(_, n, _)| *n)
            else {
                return false;
            };
            let first = *self.first_lookup.get_or_init(|| now);
            now.saturating_duration_since(first) < Duration::from_millis(ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::enabled::Plan;

    #[test]
    fn panics_at_the_nth_call_once() {
        let plan = Plan::parse("sampler-cycle@3,resolver-round@1");
        let calls: Vec<bool> = (0..6).map(|_| plan.due("sampler-cycle")).collect();
        assert_eq!(calls, [false, false, true, false, false, false]);
        assert!(plan.due("resolver-round"));
        assert!(!plan.due("resolver-round"));
        assert!(!plan.due("capture-packet"), "a point not asked for");
    }

    #[test]
    fn one_point_may_be_asked_at_several_calls() {
        let plan = Plan::parse(" capture-packet@2 , capture-packet@4 ");
        let calls: Vec<bool> = (0..5).map(|_| plan.due("capture-packet")).collect();
        assert_eq!(calls, [false, true, false, true, false]);
    }

    #[test]
    fn bad_items_are_left_out() {
        let plan = Plan::parse("sampler-cycle,@3,x@0,y@-1,z@two,,ok@1");
        assert!(!plan.due("sampler-cycle"));
        assert!(!plan.due("x"));
        assert!(plan.due("ok"));
        assert!(Plan::parse("").points.is_empty());
    }

    #[cfg(not(feature = "fault-injection"))]
    #[test]
    fn without_the_feature_nothing_panics() {
        std::env::set_var("CAPTURE_INJECT_FAULTS", "unit-test-point@1");
        super::inject("unit-test-point");
    }

    #[test]
    fn lookups_fail_for_n_ms_from_the_first_call() {
        use std::time::{Duration, Instant};
        let plan = Plan::parse("sampler-cycle@3,lookups-fail-ms@6000");
        let first = Instant::now() + Duration::from_secs(10);
        let at = |ms: u64| first + Duration::from_millis(ms);
        assert!(plan.lookups_fail(first), "the first call starts the count");
        assert!(plan.lookups_fail(at(1)));
        assert!(plan.lookups_fail(at(5999)));
        assert!(!plan.lookups_fail(at(6000)), "N ms after the first call");
        assert!(!plan.lookups_fail(at(60_000)));
        // A clock read before the first call (another thread's) is still within the window.
        assert!(plan.lookups_fail(first - Duration::from_millis(5)));
    }

    #[test]
    fn lookups_never_fail_without_the_item() {
        let now = std::time::Instant::now();
        assert!(!Plan::parse("").lookups_fail(now));
        assert!(!Plan::parse("resolver-round@1").lookups_fail(now));
        assert!(
            !Plan::parse("lookups-fail-ms@0").lookups_fail(now),
            "N = 0 is left out"
        );
    }

    #[cfg(not(feature = "fault-injection"))]
    #[test]
    fn without_the_feature_lookups_never_fail() {
        std::env::set_var("CAPTURE_INJECT_FAULTS", "lookups-fail-ms@600000");
        assert!(!super::lookup_fails());
    }

    #[test]
    fn a_due_point_panics_naming_itself() {
        let plan = Plan::parse("unit-test-point@2");
        plan.hit("unit-test-point");
        let second = std::panic::catch_unwind(|| plan.hit("unit-test-point"));
        let payload = second.expect_err("the second call panics");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("unit-test-point"), "{message:?}");
        plan.hit("unit-test-point");
    }
}
