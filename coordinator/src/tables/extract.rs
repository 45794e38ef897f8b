//! What the tables read from one run's typed result. The result was checked against the
//! schema when the coordinator took it (`TrainResult::parse`), so only what relates it to the
//! run is checked here: a completed or diverged run has a result, and the result's status
//! matches the run's state.

use gridsweep_proto::result::RunStatus;

use super::{JobState, RunRecord, TablesError};

/// How a run counts in the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Trained every epoch: its final accuracy is averaged.
    Completed,
    /// The loss became non-finite: counted, never averaged.
    Diverged,
    /// Failed: counted, never averaged.
    Failed,
    /// Pending or running: counted, never averaged.
    Unfinished,
}

/// One run's gradient analysis at one epoch, as Table 2 uses it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GradFigures {
    /// The epoch after which it was taken (0: at initialisation).
    pub epoch: u32,
    /// Whether that is the run's last epoch (after training, as the paper's Table 2).
    pub after_training: bool,
    /// Gradient elements (parameters x validation batches).
    pub total_gradients: u64,
    /// The standard deviation of the finite ones (None: none was finite).
    pub std: Option<f64>,
    /// Share of the elements that were NaN or infinite, in [0, 1].
    pub nonfinite: f64,
    /// Fractions with |g| below each of `EPSILONS`.
    pub vanished: [f64; 4],
    /// How the gradients were taken.
    pub protocol: Protocol,
}

/// How a gradient analysis was run: what the numbers of Table 2 mean. The paper does not say;
/// `table2.md` and `table2.csv` write it beside the numbers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Protocol {
    /// Batch norm in training mode (batch statistics) rather than evaluation mode (running
    /// statistics).
    pub bn_train_mode: bool,
    /// Images per gradient.
    pub batch_size: i64,
    /// Gradients (batches) taken.
    pub batches: u64,
    /// Images of the test split used (the first N).
    pub test_images: i64,
}

impl Protocol {
    /// `eval` or `train`.
    pub fn bn_mode(&self) -> &'static str {
        if self.bn_train_mode { "train" } else { "eval" }
    }

    /// The loss the gradients are of: the worker's cross-entropy, averaged over each batch.
    pub const LOSS: &'static str = "mean cross-entropy per batch";

    /// The split, as a cell: `test[:N]`.
    pub fn split(&self) -> String {
        format!("test[:{}]", self.test_images)
    }
}

/// What the tables read from one run; everything but the outcome is None without a result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Figures {
    /// How the run counts.
    pub outcome: Outcome,
    /// Trainable parameters.
    pub params: Option<u64>,
    /// FLOPs per image.
    pub flops: Option<u64>,
    /// Test accuracy after the last epoch, percent.
    pub final_test_acc: Option<f64>,
    /// Best test accuracy over the epochs, percent.
    pub best_test_acc: Option<f64>,
    /// Its (1-based) epoch.
    pub best_epoch: Option<u32>,
    /// Epochs the result has metrics for.
    pub epochs_run: Option<usize>,
    /// Training seconds over all sessions.
    pub train_seconds: Option<f64>,
    /// `cpu` or `cuda:N`.
    pub device: Option<String>,
    /// The GPU's name or the CPU thread count.
    pub device_name: Option<String>,
    /// The gradient analyses of the result, in increasing epoch order (the last is the latest).
    pub grads: Vec<GradFigures>,
}

impl Figures {
    /// A run without a result.
    fn bare(outcome: Outcome) -> Self {
        Figures {
            outcome,
            params: None,
            flops: None,
            final_test_acc: None,
            best_test_acc: None,
            best_epoch: None,
            epochs_run: None,
            train_seconds: None,
            device: None,
            device_name: None,
            grads: Vec::new(),
        }
    }
}

/// Reads what the tables need from `run`: its outcome and, for completed and diverged runs,
/// the figures of its result.
pub(crate) fn figures(run: &RunRecord) -> Result<Figures, TablesError> {
    let (outcome, expected) = match run.state {
        JobState::Pending | JobState::Running => return Ok(Figures::bare(Outcome::Unfinished)),
        JobState::Failed | JobState::Unspecified => return Ok(Figures::bare(Outcome::Failed)),
        JobState::Completed => (Outcome::Completed, RunStatus::Completed),
        JobState::Diverged => (Outcome::Diverged, RunStatus::Diverged),
    };
    let Some(r) = run.result.as_ref() else {
        return Err(TablesError::MissingResult { job_id: run.job_id.clone(), state: run.state });
    };
    if r.status != expected {
        return Err(TablesError::Inconsistent {
            job_id: run.job_id.clone(),
            problem: format!("the run is {} but its result's status is '{}'", run.state, r.status.name()),
        });
    }
    // An analysis-only run (0 epochs) has no accuracy.
    if outcome == Outcome::Completed && r.final_test_acc.is_none() && r.config.epochs > 0 {
        return Err(TablesError::Inconsistent {
            job_id: run.job_id.clone(),
            problem: "completed without a final test accuracy".to_owned(),
        });
    }
    Ok(Figures {
        outcome,
        params: Some(r.params),
        flops: Some(r.flops),
        final_test_acc: r.final_test_acc,
        best_test_acc: r.best_test_acc,
        best_epoch: r.best_epoch,
        epochs_run: Some(r.epochs.len()),
        train_seconds: Some(r.train_seconds),
        device: Some(r.environment.device.clone()),
        device_name: Some(r.environment.device_name.clone()),
        grads: r
            .grad_reports()
            .map(|g| {
                let epoch = g.epoch_or(r.epochs.len());
                GradFigures {
                    epoch,
                    // An analysis-only run (0 epochs) was never trained.
                    after_training: epoch == r.config.epochs && epoch > 0,
                    total_gradients: g.total_gradients,
                    std: g.std,
                    nonfinite: g.nonfinite as f64 / g.total_gradients.max(1) as f64,
                    vanished: g.vanished_ratios(),
                    protocol: Protocol {
                        bn_train_mode: g.config.bn_train_mode,
                        batch_size: g.config.batch_size,
                        batches: g.batches,
                        test_images: r.data.test_images,
                    },
                }
            })
            .collect(),
    })
}
