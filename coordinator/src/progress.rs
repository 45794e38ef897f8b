//! Live progress of a sweep for a person watching it, shared by `coordinator run` and
//! `coordinator status --watch`. `Board` turns successive statuses into what changed (a line per
//! job whose state changed, and a stall once it has held) and a short live block: the progress
//! line, the workers in one line, and the running jobs, as many as the terminal has rows for.
//! `Screen` draws them: on a terminal through indicatif, which scrolls the changes above the block
//! and redraws the block in place (lines are cut to the terminal's width, so none wraps);
//! elsewhere as plain lines, one per change. The work per status is linear in the jobs and the
//! block does not grow with them, so a sweep of 10,000 jobs is watched like one of ten.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use gridsweep_proto::v1 as pb;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::display;
use crate::view::{WorkerCounts, WorkerState};

/// What a watcher has seen of a sweep.
#[derive(Debug, Default)]
pub struct Board {
    /// Each job's state and epoch at the last status, to tell what changed.
    seen: HashMap<String, (pb::JobState, u32)>,
    /// Whether a status has been taken: the first one is the starting point and reports no
    /// change (a resumed sweep of thousands of ended jobs would otherwise print each of them).
    primed: bool,
    /// When to report a stall.
    stall: StallNotice,
}

impl Board {
    /// The lines to print once for `status`: each job whose state changed since the last status
    /// (with `epochs`, also each job that finished an epoch: a log rather than a screen), then
    /// the stall, if one has held long enough.
    pub fn changes(&mut self, status: &pb::SweepStatus, epochs: bool) -> Vec<String> {
        let mut events = Vec::new();
        for j in &status.jobs {
            let key = (j.state(), j.epoch);
            let before = self.seen.insert(j.job_id.clone(), key);
            let Some(before) = before.filter(|_| self.primed) else { continue };
            if before.0 != key.0 || (epochs && before.1 != key.1) {
                events.push(display::job_line(j));
            }
        }
        self.primed = true;
        events.extend(self.stall.check(&status.stalled).map(|s| match status.attach.as_str() {
            "" => s,
            attach => format!("{s}\n  attach workers with: {attach}"),
        }));
        events
    }

    /// The live block: the sweep's progress, its workers, then the running jobs, at most
    /// `rows` lines in all (the last saying how many running jobs did not fit).
    pub fn block(status: &pb::SweepStatus, rows: usize) -> Vec<String> {
        let mut lines = vec![display::progress_line(status)];
        lines.push(format!("  sweep {}, {}", status.sweep_name, workers_line(&status.workers)));
        let room = rows.saturating_sub(lines.len()).max(2);
        let running: Vec<&pb::JobStatus> = status.jobs.iter().filter(|j| j.state() == pb::JobState::Running).collect();
        let shown = if running.len() <= room { running.len() } else { room - 1 };
        lines.extend(running[..shown].iter().map(|j| format!("  {}", display::job_line(j))));
        if shown < running.len() {
            lines.push(format!("  ... and {} more running", running.len() - shown));
        }
        lines
    }
}

/// "workers: 2 live, 32 quiet, 1 quarantined, w2-0a1f: ..." with the first worker's problem
/// named: a resumed sweep keeps the workers of its earlier runs, which are quiet now.
fn workers_line(workers: &[pb::WorkerStatus]) -> String {
    let states: Vec<Option<WorkerState>> = workers.iter().map(WorkerState::of_status).collect();
    let c = WorkerCounts::of(states.iter().flatten().copied());
    let (live, quiet, quarantined) = (c.live, c.quiet, c.quarantined);
    let mut line = if states.iter().all(Option::is_some) {
        let mut parts = vec![format!("{live} live")];
        parts.extend((quiet > 0).then(|| format!("{quiet} quiet")));
        parts.extend((quarantined > 0).then(|| format!("{quarantined} quarantined")));
        format!("workers: {}", parts.join(", "))
    } else {
        // An older coordinator, which does not say.
        format!("{} workers", workers.len())
    };
    if let Some(w) = workers.iter().find(|w| !w.problem.is_empty()) {
        line += &format!(", {}: {}", w.worker_id, w.problem);
    }
    line
}

/// Says when the sweep has stalled: the explanation is reported once it has held for
/// `STALL_NOTICE_AFTER` (a sweep that just started has no worker yet), and again when it changes.
#[derive(Debug, Default)]
struct StallNotice {
    /// The explanation seen last, and since when.
    current: Option<(String, Instant)>,
    /// The explanation reported last.
    printed: Option<String>,
}

/// How long a stall must last before it is reported.
const STALL_NOTICE_AFTER: Duration = Duration::from_secs(10);

impl StallNotice {
    /// The line to print now, if any.
    fn check(&mut self, stalled: &str) -> Option<String> {
        if stalled.is_empty() {
            *self = StallNotice::default();
            return None;
        }
        match &self.current {
            Some((s, _)) if s == stalled => {}
            _ => self.current = Some((stalled.to_owned(), Instant::now())),
        }
        let (s, since) = self.current.as_ref()?;
        if since.elapsed() < STALL_NOTICE_AFTER || self.printed.as_ref() == Some(s) {
            return None;
        }
        self.printed = Some(s.clone());
        Some(format!("STALLED: {s}"))
    }
}

/// Where progress goes: a terminal (a live block redrawn in place) or a log (plain lines).
pub struct Screen {
    /// The live block's drawer, on a terminal only.
    live: Option<ProgressBar>,
    /// The terminal's rows and columns when it cannot be asked (a terminal that says 0x0).
    fallback: (u16, u16),
}

impl Screen {
    /// Progress on standard output: live when it is a terminal.
    pub fn stdout() -> Screen {
        let live = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            bar
        });
        Screen { live, fallback: (24, 80) }
    }

    /// Whether the block is drawn live (else only the changes are printed).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Prints the changes and, on a terminal, redraws the block below them. The error is
    /// standard output's (a closed pipe: whoever read it has gone).
    pub fn show(&self, changes: &[String], status: &pb::SweepStatus) -> std::io::Result<()> {
        let Some(bar) = &self.live else {
            let mut out = std::io::stdout().lock();
            for line in changes {
                writeln!(out, "{line}")?;
            }
            return out.flush();
        };
        let (rows, cols) = self.size();
        for line in changes {
            bar.println(line);
        }
        // Leave a row for the cursor and one for a change printed above before the next redraw.
        let block = Board::block(status, usize::from(rows).saturating_sub(2));
        let cut: Vec<String> = block.iter().map(|l| fit(l, usize::from(cols))).collect();
        bar.set_message(cut.join("\n"));
        bar.tick();
        Ok(())
    }

    /// Clears the block and prints the final progress line.
    pub fn finish(&self, status: &pb::SweepStatus) -> std::io::Result<()> {
        self.clear();
        writeln!(std::io::stdout().lock(), "{}", display::progress_line(status))
    }

    /// Clears the block (the command is stopping; its own message follows).
    pub fn clear(&self) {
        if let Some(bar) = &self.live {
            bar.finish_and_clear();
        }
    }

    /// The terminal's rows and columns.
    fn size(&self) -> (u16, u16) {
        match console::Term::stdout().size_checked() {
            Some((rows, cols)) if rows > 0 && cols > 0 => (rows, cols),
            _ => self.fallback,
        }
    }
}

/// `line` cut to `cols` characters (with an ellipsis), so that it never wraps.
fn fit(line: &str, cols: usize) -> String {
    console::truncate_str(line, cols.saturating_sub(1), "…").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, state: pb::JobState, epoch: u32) -> pb::JobStatus {
        let mut j =
            pb::JobStatus { job_id: id.to_owned(), arch: "resnet".into(), depth: 26, epoch, ..Default::default() };
        j.set_state(state);
        j
    }

    fn status(jobs: Vec<pb::JobStatus>) -> pb::SweepStatus {
        pb::SweepStatus { sweep_name: "s".into(), jobs, ..Default::default() }
    }

    #[test]
    fn the_first_status_is_the_start_and_later_ones_report_what_changed() {
        let mut board = Board::default();
        let first = status(vec![job("a", pb::JobState::Completed, 2), job("b", pb::JobState::Pending, 0)]);
        assert!(board.changes(&first, true).is_empty(), "a resumed sweep's ended jobs are not listed");
        let second = status(vec![job("a", pb::JobState::Completed, 2), job("b", pb::JobState::Running, 1)]);
        let changes = board.changes(&second, false);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(changes[0].starts_with("b ") && changes[0].contains("running"), "{changes:?}");
        let third = status(vec![job("a", pb::JobState::Completed, 2), job("b", pb::JobState::Running, 2)]);
        assert!(board.changes(&third, false).is_empty(), "an epoch is not a change of state");
        let fourth = status(vec![job("a", pb::JobState::Completed, 2), job("b", pb::JobState::Running, 3)]);
        assert_eq!(board.changes(&fourth, true).len(), 1, "but a log lists it");
    }

    #[test]
    fn the_block_fits_its_rows_at_ten_thousand_jobs() {
        let jobs = (0..10_000)
            .map(|i| {
                let state = if i % 10 == 0 { pb::JobState::Running } else { pb::JobState::Pending };
                job(&format!("job{i:05}"), state, 1)
            })
            .collect();
        let s = status(jobs);
        let block = Board::block(&s, 20);
        assert_eq!(block.len(), 20, "{block:?}");
        assert!(block[0].contains("0/10000 ended") && block[0].contains("1000 running"), "{}", block[0]);
        assert_eq!(block[1], "  sweep s, workers: 0 live");
        assert_eq!(block[19], "  ... and 983 more running");
        let few = Board::block(&status(vec![job("a", pb::JobState::Running, 1)]), 20);
        assert_eq!(few.len(), 3, "no 'more' line when all fit: {few:?}");
    }

    #[test]
    fn the_workers_line_counts_live_quiet_and_quarantined_workers() {
        let worker = |id: &str, state: &str, problem: &str| pb::WorkerStatus {
            worker_id: id.into(),
            state: state.into(),
            problem: problem.into(),
            ..Default::default()
        };
        let workers = [worker("w1", "quiet", ""), worker("w2", "live", ""), worker("w3", "quiet", "no data")];
        assert_eq!(workers_line(&workers), "workers: 1 live, 2 quiet, w3: no data");
        let workers = [worker("w1", "live", ""), worker("w2", "quarantined", "")];
        assert_eq!(workers_line(&workers), "workers: 1 live, 1 quarantined");
        let older = [worker("w1", "", ""), worker("w2", "", "")];
        assert_eq!(workers_line(&older), "2 workers", "a coordinator that does not say");
    }

    #[test]
    fn long_lines_are_cut_to_the_terminal() {
        let line = "x".repeat(300);
        let cut = fit(&line, 80);
        assert_eq!(console::measure_text_width(&cut), 79, "{cut}");
        assert!(cut.ends_with('…'));
        assert_eq!(fit("short", 80), "short");
    }

    #[test]
    fn a_stall_is_reported_once_after_it_has_held() {
        let mut notice = StallNotice::default();
        assert_eq!(notice.check("no worker"), None, "not at once");
        notice.current = Some(("no worker".into(), Instant::now() - STALL_NOTICE_AFTER));
        assert_eq!(notice.check("no worker").as_deref(), Some("STALLED: no worker"));
        assert_eq!(notice.check("no worker"), None, "once");
        assert_eq!(notice.check(""), None);
        assert!(notice.current.is_none(), "a cleared stall starts over");
    }
}
