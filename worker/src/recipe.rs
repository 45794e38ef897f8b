//! The training recipe lives in the protocol crate (`gridsweep_proto::job`) so that the
//! coordinator can validate sweeps without libtorch; re-exported here for the worker's code.

pub use gridsweep_proto::job::{
    AnalysisConfig, ConfigError, ConvPrecision, MatmulPrecision, Precision, TrainConfig, lr_at,
};
