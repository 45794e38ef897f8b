//! The two text formats `/metrics` answers in, and which one a scraper asked for. The registry
//! encodes OpenMetrics 1.0 (`prometheus-client`); scrapers that read only Prometheus' classic
//! text format 0.0.4 (`promtool check metrics`, older agents, a plain `curl`) get that format,
//! converted here line by line. The formats differ in a few places, each handled below: a
//! counter's family is named without `_total` in OpenMetrics and with it in the classic format
//! (so that its HELP and TYPE name its sample); the classic format has no `# UNIT`, `# EOF`,
//! `_created` samples or exemplars, no `unknown` type (`untyped`), escapes no quote in HELP, and
//! counts timestamps in milliseconds instead of seconds.

/// A text format of the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, what Prometheus asks for first.
    OpenMetrics,
    /// Prometheus' classic text format 0.0.4.
    Classic,
}

impl Format {
    /// The format for an `Accept` header: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality at least that of the classic format (`text/plain`,
    /// `text/*`, `*/*`), the classic format otherwise (no header, `*/*`, `text/plain`).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut open, mut classic) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open = open.max(q),
                "text/plain" | "text/*" | "*/*" => classic = classic.max(q),
                _ => {}
            }
        }
        if open > 0.0 && open >= classic { Format::OpenMetrics } else { Format::Classic }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The registry's OpenMetrics text in this format.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Format::OpenMetrics => openmetrics,
            Format::Classic => classic(&openmetrics),
        }
    }
}

/// One family's metadata, held until its first sample (or the next family) writes it.
#[derive(Debug, Default)]
struct Family {
    /// The OpenMetrics family name.
    name: String,
    /// Its HELP text, still OpenMetrics-escaped.
    help: Option<String>,
    /// Its OpenMetrics type.
    kind: Option<String>,
    /// Whether its HELP and TYPE lines have been written.
    written: bool,
}

impl Family {
    /// The classic type and family name: counters and infos carry their samples' suffix.
    fn classic(&self) -> (&'static str, String) {
        match self.kind.as_deref().unwrap_or("unknown") {
            "counter" => ("counter", with_suffix(&self.name, "_total")),
            "gauge" => ("gauge", self.name.clone()),
            "histogram" => ("histogram", self.name.clone()),
            "summary" => ("summary", self.name.clone()),
            "info" => ("gauge", with_suffix(&self.name, "_info")),
            "stateset" => ("gauge", self.name.clone()),
            _ => ("untyped", self.name.clone()),
        }
    }

    /// Writes the HELP and TYPE lines once.
    fn write_header(&mut self, out: &mut String) {
        if self.written || self.name.is_empty() {
            return;
        }
        self.written = true;
        let (kind, name) = self.classic();
        if let Some(help) = &self.help {
            out.push_str(&format!("# HELP {name} {}\n", classic_help(help)));
        }
        out.push_str(&format!("# TYPE {name} {kind}\n"));
    }

    /// Whether a sample of this family has no place in the classic format (`_created`).
    fn drops(&self, sample: &str) -> bool {
        let kinds = ["counter", "histogram", "summary", "gaugehistogram"];
        self.kind.as_deref().is_some_and(|k| kinds.contains(&k)) && sample == format!("{}_created", self.name)
    }
}

/// `name` ending in `suffix`.
fn with_suffix(name: &str, suffix: &str) -> String {
    if name.ends_with(suffix) { name.to_owned() } else { format!("{name}{suffix}") }
}

/// An OpenMetrics HELP text as the classic format escapes it: only backslash and newline.
fn classic_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('"') => out.push('"'),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str("\\\\"),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// A sample line split into its name, its `{labels}` (as written, possibly empty) and the rest
/// (value, timestamp, exemplar).
fn split_sample(line: &str) -> (&str, &str, &str) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    if !rest.starts_with('{') {
        return (name, "", rest);
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return (name, &rest[..=i], &rest[i + 1..]),
            _ => {}
        }
    }
    (name, rest, "")
}

/// The value and timestamp of a sample in the classic format: the exemplar dropped, the
/// timestamp from seconds to milliseconds.
fn classic_value(rest: &str) -> String {
    let rest = rest.split(" # ").next().unwrap_or("");
    let mut words = rest.split_whitespace();
    let value = words.next().unwrap_or("");
    match words.next().and_then(|t| t.parse::<f64>().ok()) {
        Some(seconds) => format!("{value} {}", (seconds * 1000.0).round() as i64),
        None => value.to_owned(),
    }
}

/// The OpenMetrics text `om` in Prometheus' classic text format 0.0.4.
pub fn classic(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut family = Family::default();
    for line in om.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut words = meta.splitn(3, ' ');
            let (what, name, text) = (words.next(), words.next().unwrap_or(""), words.next().unwrap_or(""));
            if !matches!(what, Some("HELP" | "TYPE" | "UNIT")) {
                continue; // `# EOF`, or a comment
            }
            if name != family.name {
                family.write_header(&mut out);
                family = Family { name: name.to_owned(), ..Family::default() };
            }
            match what {
                Some("HELP") => family.help = Some(text.to_owned()),
                Some("TYPE") => family.kind = Some(text.to_owned()),
                _ => {}
            }
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = split_sample(line);
        if family.drops(name) {
            continue;
        }
        family.write_header(&mut out);
        out.push_str(&format!("{name}{labels} {}\n", classic_value(rest)));
    }
    family.write_header(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert_eq!(Format::negotiate(Some(PROMETHEUS_ACCEPT)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text")), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::Classic);
        assert_eq!(Format::negotiate(Some("text/plain, application/openmetrics-text;q=0.5")), Format::Classic);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0")), Format::Classic);
        assert_eq!(Format::negotiate(Some("Application/OpenMetrics-Text; q=0.9, */*;q=0.8")), Format::OpenMetrics);
    }

    #[test]
    fn counters_are_named_with_total_and_openmetrics_only_lines_go() {
        let om = "# HELP gs_epochs Epochs \\\"seen\\\" \\\\ here.\n# TYPE gs_epochs counter\n\
                  gs_epochs_total 3 1700000000.5 # {trace=\"a\"} 1.0\ngs_epochs_created 1.7e9\n\
                  # HELP gs_jobs Jobs.\n# TYPE gs_jobs gauge\ngs_jobs{state=\"a}b \\\"c\"} 2\n\
                  # HELP gs_wait_seconds Wait.\n# TYPE gs_wait_seconds histogram\n# UNIT gs_wait_seconds seconds\n\
                  gs_wait_seconds_sum 0.5\ngs_wait_seconds_count 1\ngs_wait_seconds_bucket{le=\"+Inf\"} 1\n\
                  # HELP gs_empty Nothing yet.\n# TYPE gs_empty counter\n# HELP gs_odd Odd.\n# TYPE gs_odd unknown\n\
                  gs_odd 1\n# EOF\n";
        let expected = "# HELP gs_epochs_total Epochs \"seen\" \\\\ here.\n# TYPE gs_epochs_total counter\n\
                        gs_epochs_total 3 1700000000500\n\
                        # HELP gs_jobs Jobs.\n# TYPE gs_jobs gauge\ngs_jobs{state=\"a}b \\\"c\"} 2\n\
                        # HELP gs_wait_seconds Wait.\n# TYPE gs_wait_seconds histogram\n\
                        gs_wait_seconds_sum 0.5\ngs_wait_seconds_count 1\ngs_wait_seconds_bucket{le=\"+Inf\"} 1\n\
                        # HELP gs_empty_total Nothing yet.\n# TYPE gs_empty_total counter\n\
                        # HELP gs_odd Odd.\n# TYPE gs_odd untyped\ngs_odd 1\n";
        assert_eq!(classic(om), expected);
    }

    #[test]
    fn the_registry_s_text_keeps_every_family_and_sample() {
        let m = crate::metrics::Metrics::new();
        m.epochs_reported(2);
        m.rpc("gridsweep.v1.Coordinator/PullJob", "OK", std::time::Duration::from_millis(3));
        let om = m.encode(&[], &[]).unwrap();
        let text = classic(&om);
        let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples(&text), samples(&om), "{text}");
        let families = om.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP ")).count(), families, "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE ")).count(), families, "{text}");
        assert!(text.contains("# TYPE gridsweep_epochs_reported_total counter\ngridsweep_epochs_reported_total 2\n"));
        assert!(!text.contains("# EOF"), "{text}");
    }
}
