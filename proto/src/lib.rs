//! The gridsweep protocol, shared by the coordinator and the worker: the gRPC messages and the
//! `Coordinator` service generated from `proto/gridsweep/v1/coordinator.proto`; the job schema
//! (`job`) and the result schema (`result`) that travel in them as JSON; and what both sides of
//! a call share: the client connection (`client`), the token (`auth`), files sent in pieces
//! (`pieces`), the CIFAR-10 files both sides check (`cifar`), a device's measured speed
//! (`calibration`, written by the worker, read by the coordinator) and the expected work of a
//! job (`estimate`).

pub mod auth;
pub mod calibration;
pub mod cifar;
pub mod client;
pub mod estimate;
pub mod job;
pub mod pieces;
pub mod result;

/// Version 1 of the protocol.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("gridsweep.v1");

    /// The encoded `FileDescriptorSet` of the `.proto` files, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gridsweep_descriptor");
}

/// The protocol version this build speaks; bumped on any incompatible change to the `.proto`.
pub const PROTOCOL_VERSION: u32 = 2;

impl v1::JobState {
    /// Every stored state, in the order of their numbers.
    pub const ALL: [v1::JobState; 5] = [
        v1::JobState::Pending,
        v1::JobState::Running,
        v1::JobState::Completed,
        v1::JobState::Diverged,
        v1::JobState::Failed,
    ];

    /// The lowercase name used in the state database, files and messages.
    pub fn name(self) -> &'static str {
        match self {
            v1::JobState::Unspecified => "unspecified",
            v1::JobState::Pending => "pending",
            v1::JobState::Running => "running",
            v1::JobState::Completed => "completed",
            v1::JobState::Diverged => "diverged",
            v1::JobState::Failed => "failed",
        }
    }

    /// The state named `name` (as [`v1::JobState::name`] writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Pending or running: not ended yet.
    pub fn is_open(self) -> bool {
        matches!(self, v1::JobState::Pending | v1::JobState::Running)
    }
}

impl std::fmt::Display for v1::JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl v1::FailureKind {
    /// The lowercase name used in the state database and messages.
    pub fn name(self) -> &'static str {
        match self {
            v1::FailureKind::Job => "job",
            v1::FailureKind::Transfer => "transfer",
            v1::FailureKind::DeviceLost => "device-lost",
            v1::FailureKind::OutOfMemory => "out-of-memory",
            v1::FailureKind::Worker => "worker",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Job, Self::Transfer, Self::DeviceLost, Self::OutOfMemory, Self::Worker]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// Whether the failure is the job's own (it uses an attempt and counts towards quarantine).
    pub fn is_jobs_fault(self) -> bool {
        self == v1::FailureKind::Job
    }
}
