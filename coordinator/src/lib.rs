//! The gridsweep coordinator library: sweep files (`sweep`, re-exported from its own crate),
//! experimental conditions (`condition`), the durable state in SQLite (`store`), the gRPC service
//! (`server`), the read model every status surface renders (`view`), the paper's tables (`tables`), the plots (`plots`), the Markdown report (`report`),
//! live results while a sweep runs (`live`), its ETA (`eta`) and stalls (`stall`), the pacing of
//! its periodic reads (`pace`), the `run` command that ties them together (`run`), and the
//! expected device time of a sweep's jobs and its makespan on N workers (`plan`, `forecast`).

pub mod condition;
pub mod display;
pub mod eta;
pub mod files;
pub mod forecast;
pub mod http;
pub mod live;
pub mod metrics;
pub mod pace;
pub mod plan;
pub mod plots;
pub mod progress;
pub mod report;
pub mod run;
pub mod server;
pub mod stats;
pub mod store;
pub mod tables;
pub mod tensorboard;
pub mod view;

/// Sweep files: their own crate (`gridsweep-sweep`), so that the worker can expand a sweep
/// without linking the coordinator; re-exported so that `coordinator::sweep` paths stay.
pub use sweep;

/// What stalls a sweep: part of the read model, kept at its old path.
pub use view::stall;

pub use server::{CoordinatorService, Shared, serve};
