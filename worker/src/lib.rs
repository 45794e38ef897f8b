//! The gridsweep worker library: the paper's models (`models`), CIFAR-10 data (`data`), the
//! training recipe (`recipe`, `optim`, `train`, `checkpoint`), the gradient analysis
//! (`gradstats`), throughput (`bench`), a device's calibration for a sweep (`calibrate`),
//! inspection (`inspect`), the device probe (`devices`), the sweep participant that pulls jobs
//! from a coordinator (`agent`) and the log lines on stderr (`logging`).

pub mod agent;
pub mod alloc;
pub mod bench;
pub mod calibrate;
pub mod checkpoint;
pub mod cli;
pub mod context;
pub mod data;
pub mod devices;
pub mod gradstats;
pub mod inspect;
pub mod layout;
pub mod logging;
pub mod memory;
pub mod models;
pub mod optim;
pub mod recipe;
pub mod slots;
pub mod speed;
pub mod train;
