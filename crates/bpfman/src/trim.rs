//! Gives freed heap back to the kernel once the daemon goes quiet.
//!
//! glibc keeps memory freed by a burst of requests (1,000 loads, then 1,000
//! unloads) in its arenas: the daemon's RSS stayed at its peak after every
//! program was unloaded. `malloc_trim` returns the free pages of every arena;
//! running it once per burst, after a short quiet spell, keeps it off the
//! request path.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// How long the daemon must be idle after a request before it trims.
pub const QUIET: Duration = Duration::from_millis(300);

/// A handle that schedules one trim after the next quiet spell.
#[derive(Clone, Debug)]
pub struct Trimmer(Arc<Notify>);

impl Trimmer {
    /// Starts the trimming task on the current tokio runtime.
    pub fn spawn() -> Self {
        let notify = Arc::new(Notify::new());
        let wake = Arc::clone(&notify);
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                // Each further request restarts the quiet spell.
                while tokio::time::timeout(QUIET, wake.notified()).await.is_ok() {}
                // SAFETY: malloc_trim only walks glibc's own arenas; it has
                // no preconditions and is thread-safe.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
        Trimmer(notify)
    }

    /// Notes that a request finished.
    pub fn poke(&self) {
        self.0.notify_one();
    }
}
