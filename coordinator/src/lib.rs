//! The gridsweep coordinator library: sweep files (`sweep`), experimental conditions
//! (`condition`), the durable state in SQLite
//! (`store`), the gRPC service (`server`), the paper's tables (`tables`), the plots (`plots`),
//! the Markdown report (`report`) and the `run` command that ties them together (`run`).

pub mod condition;
pub mod display;
pub mod eta;
pub mod files;
pub mod live;
pub mod plots;
pub mod report;
pub mod run;
pub mod server;
pub mod stall;
pub mod store;
pub mod sweep;
pub mod tables;

pub use server::{CoordinatorService, Shared, serve};
