//! Gives freed heap back to the kernel once the daemon goes quiet.
//!
//! After a burst of requests (1,000 loads, then 1,000 unloads) the daemon's
//! RSS stayed near its peak: SQLite kept its page cache (up to 2 MB) and
//! prepared statements, and glibc kept the freed memory in its arenas. Once
//! per burst, after a short quiet spell, the trimmer releases the store's
//! caches and then runs `malloc_trim`, which returns the free pages of every
//! arena; this keeps the work off the request path. It is the only place the
//! daemon's heap shrinks: `serve` turns glibc's trim-on-free off so that a
//! burst reuses its pages instead of faulting them in again per request.

use std::sync::Arc;
use std::time::Duration;

use bpfman_manager::Manager;
use tokio::sync::Notify;

/// How long the daemon must be idle after a request before it trims.
pub const QUIET: Duration = Duration::from_millis(300);

/// A handle that schedules one trim after the next quiet spell.
#[derive(Clone, Debug)]
pub struct Trimmer(Arc<Notify>);

impl Trimmer {
    /// Starts the trimming task for `mgr` on the current tokio runtime.
    pub fn spawn(mgr: Arc<Manager>) -> Self {
        let notify = Arc::new(Notify::new());
        let wake = Arc::clone(&notify);
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                // Each further request restarts the quiet spell.
                while tokio::time::timeout(QUIET, wake.notified()).await.is_ok() {}
                let mgr = Arc::clone(&mgr);
                // The store's mutex may be held by a request that arrived
                // meanwhile: wait for it on the blocking pool, not here.
                let _ = tokio::task::spawn_blocking(move || {
                    // Only caches are dropped; a failure leaves them in place.
                    if let Err(e) = mgr.release_memory() {
                        tracing::debug!("cannot release the store's caches: {e}");
                    }
                    // SAFETY: malloc_trim only walks glibc's own arenas; it
                    // has no preconditions and is thread-safe.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                })
                .await;
            }
        });
        Trimmer(notify)
    }

    /// Notes that a request finished.
    pub fn poke(&self) {
        self.0.notify_one();
    }
}
