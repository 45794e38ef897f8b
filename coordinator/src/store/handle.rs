//! [`StoreHandle`]: the one way async code reaches the store. It runs a store call on the
//! blocking pool (a read, or a transition whose commit waits for an fsync, must not hold a
//! runtime thread) and maps what can go wrong once: the call's own error through `From`, and a
//! blocking task that panicked or was cancelled as [`TaskFailed`], labelled by what was being
//! done. Synchronous code (already on the blocking pool or on a one-shot command's main thread)
//! reaches the [`Store`] through `Deref`.

use std::ops::Deref;
use std::sync::Arc;

use super::Store;

/// A blocking task that did not return: it panicked, or the runtime shut down under it.
#[derive(Debug, thiserror::Error)]
#[error("{what}: the blocking task failed: {message}")]
pub struct TaskFailed {
    /// What the task was doing (`reading the status`, `writing the outputs`).
    pub what: &'static str,
    /// The join error's text (the panic's message, or the cancellation).
    pub message: String,
}

/// The store, shared, with an async door.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    /// The store every clone of the handle reaches.
    store: Arc<Store>,
}

impl StoreHandle {
    /// A handle over `store`.
    pub fn new(store: Store) -> StoreHandle {
        StoreHandle { store: Arc::new(store) }
    }

    /// Runs `f` over the store on the blocking pool; a task that fails is `what` failing.
    pub async fn call<T, E>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<TaskFailed> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r,
            Err(e) => Err(E::from(TaskFailed { what, message: e.to_string() })),
        }
    }
}

impl From<TaskFailed> for std::io::Error {
    fn from(e: TaskFailed) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }
}

impl Deref for StoreHandle {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

/// Runs blocking work that is not a store call (file I/O, building a large view) on the blocking
/// pool, with the same labelling of a failed task.
pub async fn off_runtime<T, E>(what: &'static str, f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<TaskFailed> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(E::from(TaskFailed { what, message: e.to_string() })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    /// The errors a caller of the handle sees in these tests.
    #[derive(Debug, thiserror::Error)]
    enum Seen {
        #[error(transparent)]
        Store(#[from] StoreError),
        #[error(transparent)]
        Task(#[from] TaskFailed),
    }

    #[tokio::test]
    async fn a_panic_is_labelled_by_what_was_being_done() {
        let dir = std::env::temp_dir().join(format!("gridsweep-handle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let handle = StoreHandle::new(Store::open(&dir).unwrap());
        let names: Result<Option<String>, Seen> = handle.call("reading the name", |s| Ok(s.sweep_name()?)).await;
        assert_eq!(names.unwrap(), None, "a fresh state holds no sweep");
        let failed: Result<(), Seen> = handle.call("writing the outputs", |_| panic!("disk on fire")).await;
        let text = failed.unwrap_err().to_string();
        assert!(text.starts_with("writing the outputs: the blocking task failed"), "{text}");
        assert!(text.contains("disk on fire"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
