//! The worker's log lines on stderr, through `tracing`: text for people (timestamp, level, the
//! span a line belongs to, e.g. `job{job=… attempt=1 worker=3}`, and the message), or one flat
//! JSON object per line for machines, where the fields of the spans an event is in (a job's
//! `job`, `attempt` and `worker`) sit at the top level beside the event's own, as in the
//! coordinator's JSON lines.
//!
//! Which lines: `RUST_LOG` when set, else `DEFAULT_FILTER` (the worker's own lines from `info`
//! up, other crates' warnings). A panic is logged as an error line too, so that in JSON mode
//! every line on stderr is JSON (libtorch's own C++ warnings excepted).

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// The filter when `RUST_LOG` is unset or empty: the worker's lines (leases, epochs, results)
/// from `info` up, the libraries' from `warn` up.
pub const DEFAULT_FILTER: &str = "warn,worker=info";

/// Sends the process's `tracing` events to stderr in `format`, filtered by `RUST_LOG` (or
/// `DEFAULT_FILTER`), and logs panics through it. Call once, first thing.
pub fn init(format: LogFormat) {
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).with_target(false).init(),
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(FlatJson).init(),
    }
    std::panic::set_hook(Box::new(log_panic));
}

/// The panic hook: one error line (with the backtrace when `RUST_BACKTRACE` asks for one) in
/// place of the standard hook's bare text, inside whatever span the panicking thread is in. A
/// panic that is tch unwrapping a libtorch error (caught and classified on the training thread)
/// is logged as libtorch's message without the C++ frame list it carries, dozens of lines long.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let text = crate::train::fault::panic_text(info.payload());
    let message = match crate::train::TorchFault::from_panic_text(&text) {
        Some(fault) => format!("libtorch error: {}", fault.message),
        None => text,
    };
    let location = info.location().map(ToString::to_string).unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    let backtrace = std::backtrace::Backtrace::capture();
    if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
        tracing::error!(%backtrace, "thread '{thread}' panicked at {location}: {message}");
    } else {
        tracing::error!("thread '{thread}' panicked at {location}: {message}");
    }
}

/// The JSON line format: `{"timestamp", "level", "message", <span and event fields>, "target"}`
/// on one line. Span fields come outermost first; an event's own field of the same name wins.
struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // JsonFields recorded the span's fields as a JSON object.
                let recorded = extensions.get::<FormattedFields<JsonFields>>();
                if let Some(Ok(Value::Object(m))) = recorded.map(|f| serde_json::from_str::<Value>(f)) {
                    fields.extend(m);
                }
            }
        }
        event.record(&mut Fields(&mut fields));
        let meta = event.metadata();
        let message = fields.remove("message").unwrap_or_else(|| Value::from(""));
        let json = |v: &Value| serde_json::to_string(v).map_err(|_| fmt::Error);
        let string = |s: &str| json(&Value::from(s));
        // Written key by key to keep this order (a serde_json Map sorts its keys).
        write!(writer, "{{\"timestamp\":{},\"level\":{}", string(&timestamp)?, string(meta.level().as_str())?)?;
        write!(writer, ",\"message\":{}", json(&message)?)?;
        for (key, value) in &fields {
            if !matches!(key.as_str(), "timestamp" | "level" | "target") {
                write!(writer, ",{}:{}", string(key)?, json(value)?)?;
            }
        }
        writeln!(writer, ",\"target\":{}}}", string(meta.target())?)
    }
}

/// Collects an event's fields as JSON values: numbers and booleans as such, the rest as strings.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;

    use super::FlatJson;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_are_flat_with_the_span_fields_beside_the_events() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let worker = tracing::info_span!("worker", worker = "w7", name = "host/pid 1");
            let _w = worker.enter();
            let job = tracing::info_span!("job", job = "abc123", attempt = 2u32);
            let _j = job.enter();
            tracing::info!(epoch = 3u32, loss = 0.5, "epoch \"3\"\tdone");
            tracing::warn!(attempt = 9u32, "the event's own field wins");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = &lines[0];
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'), "{first}");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "epoch \"3\"\tdone");
        assert_eq!((&first["job"], &first["attempt"], &first["worker"]), (&"abc123".into(), &2.into(), &"w7".into()));
        assert_eq!((&first["name"], &first["epoch"], &first["loss"]), (&"host/pid 1".into(), &3.into(), &0.5.into()));
        assert_eq!(first["target"], module_path!());
        assert!(text.starts_with("{\"timestamp\":"), "{text}");
        assert_eq!((&lines[1]["level"], &lines[1]["attempt"]), (&"WARN".into(), &9.into()));
    }
}
