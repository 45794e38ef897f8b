//! The gridsweep coordinator library. For now it serves the protocol handshake; sweep expansion,
//! leases, the SQLite state and the tables arrive with issue #4.

pub mod server;

pub use server::{CoordinatorService, run};
