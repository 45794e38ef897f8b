//! The sweep's status message (`GetStatus`, `WatchStatus`, the `run` command's progress): the
//! read model's `SweepView` of a store snapshot, rendered as the proto message.

use std::sync::Arc;

use gridsweep_proto::v1 as pb;
use tonic::Status;

use super::shared::Shared;
use crate::store::StoreError;

impl Shared {
    /// The sweep's status message (blocking: a store read).
    pub fn status(&self) -> Result<pb::SweepStatus, StoreError> {
        Ok(self.source.view()?.to_status(self.attach.get().map_or("", String::as_str)))
    }

    /// The status message, read on the blocking pool (for async callers).
    pub async fn status_off_runtime(self: &Arc<Self>) -> Result<pb::SweepStatus, Status> {
        self.source.status_async::<Status>().await
    }
}
