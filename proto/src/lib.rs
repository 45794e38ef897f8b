//! The gridsweep protocol, shared by the coordinator and the worker: the gRPC messages and the
//! `Coordinator` service generated from `proto/gridsweep/v1/coordinator.proto`, and the job
//! schema (`job`) that travels in them as JSON, and what both sides of a call share: the client
//! connection (`client`), the token (`auth`), files sent in pieces (`pieces`), a device's
//! measured speed (`calibration`, written by the worker, read by the coordinator) and the
//! expected work of a job (`estimate`).

pub mod auth;
pub mod calibration;
pub mod client;
pub mod estimate;
pub mod job;
pub mod pieces;

/// Version 1 of the protocol.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("gridsweep.v1");
}

/// The protocol version this build speaks; bumped on any incompatible change to the `.proto`.
pub const PROTOCOL_VERSION: u32 = 1;
