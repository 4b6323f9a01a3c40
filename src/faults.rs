//! Test-only fault injection: [`inject`] marks a point in a thread's work where the tests of
//! issue 14 make the plugin panic, to show that the thread survives it. Called by the thread
//! that does the work (sampler, resolver, capture threads).
//!
//! Without the cargo feature `fault-injection` (every release build: the packaged `.so`
//! never contains it) [`inject`] is an empty inline function. With it, the environment
//! variable `CAPTURE_INJECT_PANIC`, read once, lists `point@N` items separated by commas:
//! `sampler-cycle@3,resolver-round@5` panics at the 3rd call of `sampler-cycle` and the 5th
//! of `resolver-round`, once each, with a message naming the point.
//!
//! Points: `sampler-cycle`, `resolver-round`, `capture-housekeeping`, `capture-packet`.

/// A point where a test may inject a panic; nothing at all without `fault-injection`.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn inject(_point: &'static str) {}

/// A point where a test may inject a panic: panics at the Nth call of `point` when
/// `CAPTURE_INJECT_PANIC` asks for it.
#[cfg(feature = "fault-injection")]
pub fn inject(point: &'static str) {
    use std::sync::OnceLock;
    static PLAN: OnceLock<enabled::Plan> = OnceLock::new();
    let plan = PLAN.get_or_init(|| {
        enabled::Plan::parse(&std::env::var("CAPTURE_INJECT_PANIC").unwrap_or_default())
    });
    plan.hit(point);
}

/// The plan read from the environment; parsed and counted in plain code so that it is
/// unit-tested with and without the feature.
#[cfg_attr(not(any(test, feature = "fault-injection")), allow(dead_code))]
mod enabled {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Each point asked for, at which call it panics, and how many calls it has had.
    #[derive(Debug, Default)]
    pub struct Plan {
        pub(super) points: Vec<(String, u64, AtomicU64)>,
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
                        "CAPTURE_INJECT_PANIC: `{item}` is not `point@N` with N >= 1; left out"
                    ),
                }
            }
            Plan { points }
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
                panic!("injected panic at `{point}` (CAPTURE_INJECT_PANIC)");
            }
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
        std::env::set_var("CAPTURE_INJECT_PANIC", "unit-test-point@1");
        super::inject("unit-test-point");
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
