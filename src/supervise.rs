//! What keeps the plugin's threads going when one of them hits a bug: the [`ThreadBoard`], a
//! registry of the plugin's threads (alive or not, panics caught), [`guard`], which runs one
//! unit of a thread's work (a sampler cycle, a resolver round, a packet ...) and catches its
//! panic, and [`spawn`], which starts a registered thread with a last backstop around its body.
//!
//! Used by every thread of the plugin (sampler, resolver, capture threads) on itself; the
//! sampler reads the board's [`health`](ThreadBoard::health) into each snapshot, which the
//! collectd adapter reports as `capture-self/gauge-alive-<thread>` and
//! `capture-self/derive-panics-<thread>`.
//!
//! A panic never crosses the FFI boundary: the threads are the plugin's own, and whatever
//! escapes their work is caught here. The log says each kind of panic once (per thread and
//! per thing being done, with its message and place), later ones are only counted: a bug hit
//! by every packet must not flood collectd's log. The default panic hook's message on stderr
//! (collectd's stderr, often the journal) is kept for panics outside any guard; a guarded
//! panic is said by its log line alone, which names the place.

use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;

/// Distinct kinds of panic (things being done) a thread logs; beyond this many, panics are
/// only counted. Threads do a handful of distinct things: this bounds memory, not the log.
const MAX_KINDS_LOGGED: usize = 16;

/// The plugin's threads, shared (`Arc`) between the threads themselves and the sampler,
/// which reports their health.
#[derive(Default)]
pub struct ThreadBoard {
    slots: Mutex<Vec<Arc<Slot>>>,
}

/// One registered thread.
struct Slot {
    name: String,
    alive: AtomicBool,
    panics: AtomicU64,
    /// The kinds of panic (what was being done) already logged.
    logged: Mutex<Vec<String>>,
}

/// How one thread is doing, as of the call to [`ThreadBoard::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadHealth {
    /// As registered: `sampler`, `resolver`, `capture_<interface>`.
    pub name: String,
    /// False once the thread has ended, normally or by a panic that escaped its body.
    pub alive: bool,
    /// Panics caught in this thread since it was registered.
    pub panics: u64,
}

/// A running thread's registration: alive while it exists. Dropped when the thread's body
/// returns or unwinds, which marks the thread not alive. Not `Clone` (a dropped copy would
/// mark the thread dead): hand `&ThreadToken` to whatever runs on the thread.
pub struct ThreadToken {
    slot: Arc<Slot>,
}

impl ThreadBoard {
    pub fn new() -> Arc<ThreadBoard> {
        Arc::new(ThreadBoard::default())
    }

    /// Registers a thread called `name` and marks it alive until the token is dropped. A name
    /// registered before whose thread has ended is taken over (its panic count goes on), so a
    /// thread started again under the same name keeps one line in the report.
    pub fn register(&self, name: &str) -> ThreadToken {
        let mut slots = self.slots.lock();
        let reusable = slots
            .iter()
            .find(|s| s.name == name && !s.alive.load(Ordering::SeqCst));
        let slot = match reusable {
            Some(slot) => Arc::clone(slot),
            None => {
                let slot = Arc::new(Slot {
                    name: name.to_string(),
                    alive: AtomicBool::new(false),
                    panics: AtomicU64::new(0),
                    logged: Mutex::new(Vec::new()),
                });
                slots.push(Arc::clone(&slot));
                slot
            }
        };
        slot.alive.store(true, Ordering::SeqCst);
        ThreadToken { slot }
    }

    /// Every registered thread, in the order they were first registered.
    pub fn health(&self) -> Vec<ThreadHealth> {
        self.slots
            .lock()
            .iter()
            .map(|s| ThreadHealth {
                name: s.name.clone(),
                alive: s.alive.load(Ordering::SeqCst),
                panics: s.panics.load(Ordering::SeqCst),
            })
            .collect()
    }
}

impl ThreadToken {
    /// The name the thread was registered under.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// Panics caught in this thread so far.
    pub fn panics(&self) -> u64 {
        self.slot.panics.load(Ordering::SeqCst)
    }

    /// Counts a caught panic of the kind `doing`; returns the line to log when this is the
    /// first of its kind in this thread, `None` when it was said already.
    fn caught(
        &self,
        doing: &str,
        message: &str,
        place: Option<&str>,
        goes_on: bool,
    ) -> Option<String> {
        let count = self.slot.panics.fetch_add(1, Ordering::SeqCst) + 1;
        let mut logged = self.slot.logged.lock();
        if logged.iter().any(|d| d == doing) || logged.len() >= MAX_KINDS_LOGGED {
            return None;
        }
        logged.push(doing.to_string());
        let name = &self.slot.name;
        let at = place.map(|p| format!(" at {p}")).unwrap_or_default();
        let outcome = if goes_on {
            "caught; the thread goes on".to_string()
        } else {
            format!("the thread has ended (capture-self/gauge-alive-{name} is 0)")
        };
        Some(format!(
            "thread `{name}` panicked in {doing}: {message}{at}; {outcome} (panic {count} of \
             this thread; this kind is said once, every panic is counted in \
             capture-self/derive-panics-{name})"
        ))
    }
}

impl Drop for ThreadToken {
    fn drop(&mut self) {
        self.slot.alive.store(false, Ordering::SeqCst);
    }
}

/// Runs `f`, one unit of the work of the thread holding `token`, described by `doing` (read
/// in the log as "panicked in {doing}": "a sampler cycle", "a resolver round" ...). A panic
/// is caught, counted on the token, logged once per kind, and `None` is returned: the thread
/// goes on with its next unit. Whatever `f` was changing may be left half done: callers keep
/// their state so that a unit cut short leaves nothing to count twice.
pub fn guard<T>(token: &ThreadToken, doing: &str, f: impl FnOnce() -> T) -> Option<T> {
    run_caught(token, doing, f, true)
}

/// Starts the thread `name` registered on `board`, running `body` with its token. The OS
/// thread is called `capture-<name>` (a leading `capture_` not repeated; cut to the kernel's
/// 15 bytes), as `top -H` shows it. A panic escaping `body` (one no [`guard`] caught) is the
/// last backstop: logged once, counted, and the thread ends, reported not alive.
pub fn spawn<F>(board: &Arc<ThreadBoard>, name: &str, body: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce(&ThreadToken) + Send + 'static,
{
    let token = board.register(name);
    std::thread::Builder::new()
        .name(os_thread_name(name))
        .spawn(move || {
            let _ = run_caught(&token, "the thread's body", || body(&token), false);
        })
    // An Err drops the closure, and with it the token: the thread is registered not alive.
}

/// `capture-<name>` within the 15 bytes the kernel keeps (`capture-sampler`,
/// `capture-resolve`, `capture-eth0` for `capture_eth0`).
fn os_thread_name(name: &str) -> String {
    let short = name.strip_prefix("capture_").unwrap_or(name);
    let mut out = String::from("capture-");
    for c in short.chars() {
        if out.len() + c.len_utf8() > 15 {
            break;
        }
        out.push(c);
    }
    out
}

thread_local! {
    /// How many guarded units are running on this thread (nested: a guard inside a thread
    /// body): the hook keeps quiet about their panics, which the log line describes.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic on this thread happened (`file:line:column`), from the hook.
    static PLACE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that notes where a panic happened (for the log
/// line). The default hook's message on stderr is kept for panics outside any guard; a
/// guarded panic is said by its log line alone, once per kind, so a bug that every packet
/// hits writes neither collectd's log nor stderr once per packet.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let place = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let _ = PLACE.try_with(|p| *p.borrow_mut() = place);
            if GUARDED.try_with(Cell::get).unwrap_or(0) == 0 {
                previous(info);
            }
        }));
    });
}

/// Marks a guarded unit running on this thread; unmarked on drop, unwinding included.
struct Guarded;

impl Guarded {
    fn enter() -> Guarded {
        GUARDED.with(|g| g.set(g.get() + 1));
        Guarded
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = GUARDED.try_with(|g| g.set(g.get().saturating_sub(1)));
    }
}

fn run_caught<T>(
    token: &ThreadToken,
    doing: &str,
    f: impl FnOnce() -> T,
    goes_on: bool,
) -> Option<T> {
    install_hook();
    let result = {
        let _guarded = Guarded::enter();
        catch_unwind(AssertUnwindSafe(f))
    };
    match result {
        Ok(value) => Some(value),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let place = PLACE.with(|p| p.borrow_mut().take());
            if let Some(line) = token.caught(doing, &message, place.as_deref(), goes_on) {
                log::error!("{line}");
            }
            // The payload is dropped here, inside nothing: a payload whose drop panics
            // (never ours) would end the thread, as it would without the guard.
            drop(payload);
            None
        }
    }
}

/// The text of a panic's payload: `panic!("...")` carries a `&str` or a `String`.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

#[cfg(test)]
mod tests;
