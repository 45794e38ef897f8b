//! [`TrainResult::simulated`]: a well-formed result without training, for simulated workers in
//! tests and benchmarks.

use std::path::PathBuf;

use super::{DataInfo, Environment, EpochMetrics, GridExec, MemoryFormat, RunStatus, TrainResult};
use crate::job::TrainConfig;

impl TrainResult {
    /// A well-formed result of `config` with test accuracies `test_accs` per epoch, on a CPU,
    /// without a gradient analysis: what simulated workers in tests and benchmarks deliver.
    pub fn simulated(config: TrainConfig, status: RunStatus, test_accs: &[f64]) -> TrainResult {
        let epochs: Vec<EpochMetrics> = test_accs
            .iter()
            .enumerate()
            .map(|(i, &acc)| EpochMetrics {
                epoch: i as u32 + 1,
                lr: config.lr,
                train_loss: Some(1.0),
                train_acc: acc,
                test_loss: Some(1.0),
                test_acc: acc,
                seconds: 1.0,
                images_per_s: 100.0,
            })
            .collect();
        let best = epochs.iter().max_by(|a, b| a.test_acc.total_cmp(&b.test_acc).then(b.epoch.cmp(&a.epoch)));
        TrainResult {
            params: 0,
            flops: 0,
            status,
            final_test_acc: epochs.last().filter(|_| status == RunStatus::Completed).map(|m| m.test_acc),
            best_test_acc: best.map(|m| m.test_acc),
            best_epoch: best.map(|m| m.epoch),
            wall_seconds: epochs.len() as f64,
            train_seconds: epochs.len() as f64,
            resumed_from_epoch: None,
            data: DataInfo { dir: PathBuf::new(), synthetic: true, train_images: 0, test_images: 0 },
            environment: Environment {
                device: "cpu".to_owned(),
                device_name: "simulated".to_owned(),
                libtorch_version: String::new(),
                cuda_version: None,
                cudnn_benchmark: false,
                deterministic: false,
                grid_exec: Some(GridExec::Sequential),
                memory_format: Some(MemoryFormat::Contiguous),
                tf32: Some(false),
            },
            grad_analysis: None,
            earlier_grad_analyses: Vec::new(),
            epochs,
            config,
        }
    }
}
