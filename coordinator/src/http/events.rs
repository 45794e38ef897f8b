//! `/api/events`: a server-sent event stream that says `change` with the new state version
//! whenever the store changes (a lease, an epoch report, a job's end, a worker's arrival), at
//! most every `MIN_GAP`, so that the page fetches fresh data without reloading. A comment line
//! every 15 s keeps proxies from closing an idle stream. The stream ends when the server stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use super::Dashboard;

/// The shortest gap between two events: a burst of epoch reports from many workers becomes one
/// refresh, well inside the 2 s the page promises.
const MIN_GAP: Duration = Duration::from_millis(250);

/// The event stream: the current version at once, then each newer one.
pub async fn stream(State(d): State<Arc<Dashboard>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut changes = d.source.changed.subscribe();
    let mut closing = d.closing.subscribe();
    tokio::spawn(async move {
        loop {
            let version = *changes.borrow_and_update();
            if tx.send(Ok(Event::default().event("change").data(version.to_string()))).await.is_err() {
                return;
            }
            tokio::time::sleep(MIN_GAP).await;
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = closing.wait_for(|c| *c) => return,
                () = tx.closed() => return,
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
