//! The Markdown tables: ours beside the paper's published figures (Park & Han, "Gradient Flow
//! Analysis of Ultra-Deep Residual Networks and a Grid-Based Bifurcation-Merge Paradigm",
//! Tables 1 and 2, as transcribed in /work/shared/paper/SUMMARY.md). The paper's "Ours" is our
//! `grid`. Rows are this sweep's; where the paper has no figure for a row, its column says "—".
//! When the sweep varies more than architecture, depth and seed, each varying setting is a
//! leading column and each condition has its own rows, the paper's figures beside every row of
//! their depth (and model).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use gridsweep_proto::job::{Arch, DataSpec};

use super::aggregate::{self, Cell, Table1Row, Table2Row};
use super::extract::{Outcome, Protocol};
use super::{EPS_NAMES, Entry, arch_index, mean_std};
use crate::condition::{SettingValue, Varying};

/// What is not a number of ours or the paper's.
const NONE: &str = "—";

/// One row of the paper's Table 1. These are the published figures, hard-coded as printed
/// (params shared by the three architectures; FLOPs and accuracy in vgg, resnet, grid order).
struct PaperTable1 {
    /// Layers.
    depth: u32,
    /// Parameters, as printed.
    params: &'static str,
    /// FLOPs per image: VGG, ResNet, Ours.
    flops: [&'static str; 3],
    /// Test accuracy in percent: VGG, ResNet, Ours.
    acc: [&'static str; 3],
}

/// The paper's Table 1, as published (not computed here).
const PAPER_TABLE1: [PaperTable1; 4] = [
    PaperTable1 { depth: 26, params: "0.37M", flops: ["55.70M", "56.01M", "56.01M"], acc: ["91.34", "93.07", "92.68"] },
    PaperTable1 {
        depth: 98,
        params: "1.54M",
        flops: ["228.32M", "228.63M", "228.63M"],
        acc: ["64.56", "94.03", "94.43"],
    },
    PaperTable1 {
        depth: 386,
        params: "6.20M",
        flops: ["918.81M", "919.11M", "919.11M"],
        acc: ["10.00", "93.55", "94.93"],
    },
    PaperTable1 { depth: 1538, params: "24.87M", flops: ["3.68G", "3.68G", "3.68G"], acc: ["10.00", "94.21", "95.09"] },
];

/// One row of the paper's Table 2, as printed.
struct PaperTable2 {
    /// The architecture ("Ours" is grid).
    arch: Arch,
    /// Layers.
    depth: u32,
    /// Gradient elements.
    total_gradients: &'static str,
    /// Their standard deviation.
    std: &'static str,
    /// Vanished ratios at 1e-4 .. 1e-7.
    vanished: [&'static str; 4],
}

/// The paper's Table 2, as published (not computed here).
const PAPER_TABLE2: [PaperTable2; 2] = [
    PaperTable2 {
        arch: Arch::Resnet,
        depth: 1538,
        total_gradients: "~2.49e9",
        std: "2.60e-3",
        vanished: ["64.64%", "39.55%", "22.68%", "14.72%"],
    },
    PaperTable2 {
        arch: Arch::Grid,
        depth: 1538,
        total_gradients: "~2.49e9",
        std: "1.52e-3",
        vanished: ["40.10%", "16.45%", "9.31%", "6.51%"],
    },
];

/// What the Markdown says about the sweep as a whole.
pub(crate) struct Context {
    /// The sweep's name.
    name: String,
    /// The data sets, described.
    data: Vec<String>,
    /// The epoch counts configured.
    epochs: Vec<u32>,
    /// Runs by outcome: completed, diverged, failed, pending or running.
    counts: [usize; 4],
}

impl Context {
    /// Describes the sweep `name` made of `runs`.
    pub(crate) fn of(name: &str, runs: &[Entry<'_>]) -> Self {
        let data: BTreeSet<String> = runs
            .iter()
            .map(|e| match &e.run.spec.data {
                DataSpec::Cifar10 => "CIFAR-10".to_owned(),
                DataSpec::Synthetic { train, test, seed } => {
                    format!("synthetic data ({train} train / {test} test images, seed {seed})")
                }
                DataSpec::None => "no data set named by the sweep".to_owned(),
            })
            .collect();
        let epochs: BTreeSet<u32> = runs.iter().map(|e| e.run.spec.train.epochs).collect();
        let count = |o: Outcome| runs.iter().filter(|e| e.figures.outcome == o).count();
        Context {
            name: name.to_owned(),
            data: data.into_iter().collect(),
            epochs: epochs.into_iter().collect(),
            counts: [Outcome::Completed, Outcome::Diverged, Outcome::Failed, Outcome::Unfinished].map(count),
        }
    }

    /// One paragraph: what our numbers are.
    fn describe(&self) -> String {
        let data = if self.data.is_empty() { "no data".to_owned() } else { self.data.join("; ") };
        let epochs = self.epochs.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let [completed, diverged, failed, pending] = self.counts;
        format!(
            "Ours: sweep `{}` on {data}, {epochs} epochs; {completed} completed, {diverged} diverged, \
             {failed} failed, {pending} pending or running runs.",
            self.name
        )
    }
}

/// A count as the paper prints it: 0.37M, 3.68G.
fn si(x: u64) -> String {
    let v = x as f64;
    if v >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if v >= 1e4 {
        format!("{:.2}M", v / 1e6)
    } else {
        x.to_string()
    }
}

/// Our accuracy in a cell: `93.07 ± 0.12 (3) [92.77, 93.37]` (mean ± std (n) [95% interval of
/// the mean]; `[CI n/a]` from one run), then a visible ⚠ note counting the diverged,
/// failed and unfinished runs, which are not in the mean.
fn acc_cell(cell: Option<&Cell>) -> String {
    let Some(c) = cell else { return NONE.to_owned() };
    let n = c.accs.len();
    let mut out = match (mean_std(&c.accs), crate::stats::ci95_half_width(&c.accs)) {
        ((Some(m), Some(s)), Some(h)) => format!("{m:.2} ± {s:.2} ({n}) [{:.2}, {:.2}]", m - h, m + h),
        ((Some(m), _), _) => format!("{m:.2} ({n}) [CI n/a]"),
        _ => NONE.to_owned(),
    };
    let notes: Vec<String> = [(c.diverged, "diverged"), (c.failed, "failed"), (c.pending, "pending")]
        .into_iter()
        .filter(|&(k, _)| k > 0)
        .map(|(k, what)| format!("{k} {what}"))
        .collect();
    if !notes.is_empty() {
        let _ = write!(out, " ⚠ **{}**", notes.join(", "));
    }
    if c.analysis_only > 0 {
        let _ = write!(out, " ({} analysis-only, no accuracy)", c.analysis_only);
    }
    out
}

/// A condition's leading cells in Markdown: each value as `runs.csv` writes it, `none` for an
/// unset one.
fn condition_cells(condition: &[SettingValue]) -> Vec<String> {
    condition.iter().map(|v| Some(v.text()).filter(|t| !t.is_empty()).unwrap_or_else(|| "none".to_owned())).collect()
}

/// The sentence saying which settings split the rows; nothing when only architecture, depth
/// and seed vary.
fn grouping_note(varying: &Varying, what: &str) -> String {
    if varying.is_empty() {
        return String::new();
    }
    let names: Vec<String> = varying.names.iter().map(|n| format!("`{n}`")).collect();
    format!(
        "Grouped by condition: besides architecture and depth the {what} differ in {}, so each row holds the runs \
         (seeds, repeats) of one value of {}; the paper's figures are beside every row they apply to.\n\n",
        names.join(", "),
        if names.len() == 1 { "it" } else { "these" },
    )
}

/// Table 1 in Markdown: a row per condition (`varying`'s values) and depth.
pub(crate) fn table1(ctx: &Context, varying: &Varying, rows: &[Table1Row]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Table 1 — size, cost and accuracy (sweep `{}`)\n", ctx.name);
    let _ = writeln!(md, "{}", ctx.describe());
    let _ = writeln!(
        md,
        "Paper: the published figures of Park & Han, Table 1 (CIFAR-10, 300 epochs, mean of three runs); \
         the paper's \"Ours\" is `grid`.\n"
    );
    md.push_str(&grouping_note(varying, "jobs"));
    let mut header = varying.names.clone();
    header.push("layers".to_owned());
    header.extend(Arch::ALL.iter().map(|a| format!("params {a}")));
    header.push("params (paper)".to_owned());
    for a in Arch::ALL {
        header.extend([format!("FLOPs {a}"), format!("FLOPs {a} (paper)")]);
    }
    for a in Arch::ALL {
        header.extend([format!("acc {a}"), format!("acc {a} (paper)")]);
    }
    push_row(&mut md, &header);
    push_row(&mut md, &vec!["---".to_owned(); header.len()]);

    for row in rows {
        let paper = PAPER_TABLE1.iter().find(|p| p.depth == row.depth);
        let ours = |f: fn(&Cell) -> Option<u64>, a: Arch| {
            row.cells[arch_index(a)].as_ref().and_then(f).map_or_else(|| NONE.to_owned(), si)
        };
        let mut out = condition_cells(&row.condition);
        out.push(row.depth.to_string());
        out.extend(Arch::ALL.map(|a| ours(|c| c.params, a)));
        out.push(paper.map_or(NONE, |p| p.params).to_owned());
        for a in Arch::ALL {
            out.push(ours(|c| c.flops, a));
            out.push(paper.map_or(NONE, |p| p.flops[arch_index(a)]).to_owned());
        }
        for a in Arch::ALL {
            out.push(acc_cell(row.cells[arch_index(a)].as_ref()));
            out.push(paper.map_or(NONE, |p| p.acc[arch_index(a)]).to_owned());
        }
        push_row(&mut md, &out);
    }
    md.push_str(
        "\nAccuracy: test accuracy after the last epoch (never the best epoch), percent, mean ± sample \
         standard deviation (n completed runs) [95% confidence interval of the mean: Student's t with n - 1 \
         degrees of freedom, mean ± t(0.975, n - 1) std / √n; n/a from a single run]. ⚠ counts runs left out of the mean: diverged runs (the \
         paper prints such networks at 10.00, chance, since a diverged network predicts one class; we \
         report the divergence instead of a number), failed runs, and pending or running ones. Params and \
         FLOPs (per image, thop convention) are from the workers' results. — : not in this sweep, or not \
         in the paper.\n",
    );
    md
}

/// Table 2 in Markdown: a row per analysed condition (`varying`'s values), depth and
/// architecture.
pub(crate) fn table2(ctx: &Context, varying: &Varying, rows: &[Table2Row]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Table 2 — gradient distribution (sweep `{}`)\n", ctx.name);
    let _ = writeln!(md, "{}", ctx.describe());
    let _ = writeln!(
        md,
        "Paper: the published figures of Park & Han, Table 2 (1538-layer models); the paper's \"Ours\" is \
         `grid`.\n"
    );
    if rows.is_empty() {
        md.push_str("No completed run of this sweep has a gradient analysis.\n");
        return md;
    }
    md.push_str(&grouping_note(varying, "analysed jobs"));
    let with_epoch = aggregate::shows_epoch(rows);
    let mut header = varying.names.clone();
    header.push("model".to_owned());
    if with_epoch {
        header.push("epoch".to_owned());
    }
    header.extend(["runs", "total gradients", "(paper)", "std", "(paper)"].map(String::from));
    for e in EPS_NAMES {
        header.extend([format!("vanished < {e}"), "(paper)".to_owned()]);
    }
    push_row(&mut md, &header);
    push_row(&mut md, &vec!["---".to_owned(); header.len()]);
    for row in rows {
        // The paper analysed after training: its figures sit beside ours only there.
        let paper =
            PAPER_TABLE2.iter().find(|p| p.arch == row.arch && p.depth == row.depth).filter(|_| row.after_training);
        let mut out = condition_cells(&row.condition);
        let mut model = format!("{}-{}", row.arch, row.depth);
        if row.nonfinite_pct > 0.0 {
            // Overflowed gradients: the vanished shares are of every element, the std of the
            // finite ones.
            let _ = write!(model, " ⚠ {:.2}% non-finite", row.nonfinite_pct);
        }
        out.push(model);
        if with_epoch {
            out.push(if row.epoch == 0 { "0 (init)".to_owned() } else { row.epoch.to_string() });
        }
        out.extend([
            row.runs.to_string(),
            format!("{:.2e}", row.total_gradients),
            paper.map_or(NONE, |p| p.total_gradients).to_owned(),
            if row.std.is_finite() { format!("{:.2e}", row.std) } else { NONE.to_owned() },
            paper.map_or(NONE, |p| p.std).to_owned(),
        ]);
        for (i, pct) in row.vanished_pct.iter().enumerate() {
            out.push(format!("{pct:.2}%"));
            out.push(paper.map_or(NONE, |p| p.vanished[i]).to_owned());
        }
        push_row(&mut md, &out);
    }
    md.push_str(
        "\nMeans over the runs with a gradient analysis at that epoch: completed runs, and runs that diverged \
         later (a diverged epoch is never analysed). Total \
         gradients: gradient elements, parameters x validation batches. std: standard deviation of all \
         gradient elements. vanished < eps: percentage of gradient elements with |g| < eps (the paper's \
         eq. 9). — : not in the paper. ⚠ non-finite: NaN or infinite gradient elements (the backward \
         pass overflowed); they count in the total and never as vanished, and the std is of the finite ones.\n",
    );
    if with_epoch {
        md.push_str(
            "\nepoch: the analysis after that many epochs of training; 0 (init) is at initialisation, before \
             any step. The paper's figures (after its 300 epochs) sit only beside rows analysed after the \
             last epoch.\n",
        );
    }
    md.push_str(&protocol_note(rows));
    md
}

/// How the gradients of Table 2 were taken, which the paper does not state: the loss, the batch
/// size and count, the split, and batch norm's mode (evaluation: the running statistics of
/// training, the network as it is used; training: each batch's own statistics, as in training).
fn protocol_note(rows: &[Table2Row]) -> String {
    let describe = |p: &Protocol| {
        format!(
            "{} batches of {} images from the test split ({}), gradients of the {}, batch norm in {}",
            p.batches,
            p.batch_size,
            p.split(),
            Protocol::LOSS,
            if p.bn_train_mode {
                "training mode (each batch's statistics)"
            } else {
                "evaluation mode (running statistics)"
            },
        )
    };
    let all: BTreeSet<&Protocol> = rows.iter().flat_map(|r| &r.protocols).collect();
    let mut md = String::from("\nProtocol (not stated in the paper; ours, per run): ");
    if all.len() == 1 {
        let _ = writeln!(md, "{}.", all.iter().map(|p| describe(p)).collect::<String>());
        return md;
    }
    md.push_str("it differs between rows:\n\n");
    for r in rows {
        let ps: Vec<String> = r.protocols.iter().map(describe).collect();
        let _ = writeln!(md, "- {}-{} at epoch {}: {}", r.arch, r.depth, r.epoch, ps.join("; or "));
    }
    md
}

/// Appends `| a | b | ... |`.
fn push_row(md: &mut String, cells: &[String]) {
    let _ = writeln!(md, "| {} |", cells.join(" | "));
}
