//! Diagnostics: `tracing` events to stderr, filtered by `BPFMAN_LOG`
//! (default `warn`, `info` for the daemon).
//!
//! A CLI call with `BPFMAN_LOG` unset usually logs nothing, yet building the
//! formatting subscriber costs more than most of what it then does (its span
//! registry preallocates a 32 KiB shard table). There the subscriber is built
//! on the first span or event at `warn` or above: the same filter, format and
//! writer, later.

use std::sync::OnceLock;

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::{Interest, Subscriber};
use tracing::{Event, Level, Metadata};
use tracing_core::span::Current;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber (and the `log` bridge, for aya's logs).
pub fn init(daemon: bool) {
    if !daemon && std::env::var_os("BPFMAN_LOG").is_none() {
        Lazy {
            max: Level::WARN,
            make: || stderr_subscriber(EnvFilter::new("warn")),
            inner: OnceLock::new(),
        }
        .init();
        return;
    }
    let default = if daemon { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("BPFMAN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    stderr_subscriber(filter).init();
}

type Boxed = Box<dyn Subscriber + Send + Sync>;

fn stderr_subscriber(filter: EnvFilter) -> Boxed {
    Box::new(
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .finish(),
    )
}

/// A subscriber for a plain level filter (what `EnvFilter::new("warn")`
/// enables) that builds the real one on first use and forwards to it.
struct Lazy {
    /// The most verbose level enabled.
    max: Level,
    make: fn() -> Boxed,
    inner: OnceLock<Boxed>,
}

impl Lazy {
    fn inner(&self) -> &(dyn Subscriber + Send + Sync) {
        self.inner.get_or_init(self.make).as_ref()
    }
}

impl Subscriber for Lazy {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner().new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner().record(span, values)
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner().record_follows_from(span, follows)
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        self.inner().event_enabled(event)
    }

    fn event(&self, event: &Event<'_>) {
        self.inner().event(event)
    }

    fn enter(&self, span: &Id) {
        self.inner().enter(span)
    }

    fn exit(&self, span: &Id) {
        self.inner().exit(span)
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner().clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner().try_close(id)
    }

    fn current_span(&self) -> Current {
        // No span was entered before the first one built the subscriber.
        self.inner
            .get()
            .map_or_else(Current::none, |inner| inner.current_span())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;

    static OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    struct Buf;

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            OUT.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn to_buf() -> Boxed {
        Box::new(
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new("warn"))
                .with_writer(|| Buf)
                .with_ansi(false)
                .without_time()
                .finish(),
        )
    }

    #[test]
    fn lazy_builds_on_the_first_enabled_span_or_event_and_filters_as_warn() {
        let dispatch = tracing::Dispatch::new(Lazy {
            max: Level::WARN,
            make: to_buf,
            inner: OnceLock::new(),
        });
        let built = |d: &tracing::Dispatch| d.downcast_ref::<Lazy>().unwrap().inner.get().is_some();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("not shown");
            let _quiet = tracing::info_span!("quiet").entered();
            tracing::debug!("not shown either");
            assert!(!built(&dispatch), "nothing enabled yet");
            let span = tracing::warn_span!("outer", k = 1);
            let _g = span.enter();
            assert!(built(&dispatch));
            assert_eq!(
                tracing::Span::current().metadata().map(|m| m.name()),
                Some("outer")
            );
            tracing::warn!(n = 2, "shown");
            tracing::info!("still not shown");
        });
        let out = String::from_utf8(OUT.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out, " WARN outer{k=1}: bpfman::logging::tests: shown n=2\n",
            "{out}"
        );
    }
}
