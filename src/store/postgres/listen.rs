//! Telling the other replicas what changed: after an admin write commits,
//! the store NOTIFYs `downcity_changes` with the cache to reload; every
//! replica LISTENs on a connection of its own and passes what it hears on.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::mpsc;

use crate::store::{Change, ChangeEvent, ChangeFeed};

/// The one channel every replica listens on.
const CHANNEL: &str = "downcity_changes";

/// How long to wait before trying again when the listening connection
/// cannot be (re)opened: the periodic full reload covers the gap.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Announces a committed change. A failure is logged, not returned: the
/// write itself is committed, and the periodic reload catches up.
pub(super) async fn notify(pool: &PgPool, change: Change) {
    let sent = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(change.name())
        .execute(pool)
        .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, change = change.name(), "store: announcing a change failed");
    }
}

/// Starts listening; the feed ends (and the connection closes) when the
/// receiver is dropped.
pub(super) async fn subscribe(options: PgConnectOptions) -> crate::error::Result<ChangeFeed> {
    // A pool of its own: the listener holds its connection for good.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    let listener = listen_on(&pool).await?;
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        tokio::select! {
            () = forward(&pool, listener, &sender) => {}
            () = sender.closed() => {}
        }
        pool.close().await;
    });
    Ok(ChangeFeed::new(receiver))
}

async fn listen_on(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Passes notifications on until the receiver goes. Whenever announcements
/// may have been lost (the connection dropped and was re-established) it
/// reports `Resync`.
async fn forward(pool: &PgPool, mut listener: PgListener, sender: &mpsc::Sender<ChangeEvent>) {
    loop {
        let event = match listener.try_recv().await {
            Ok(Some(note)) => match Change::from_name(note.payload()) {
                Some(change) => ChangeEvent::Changed(change),
                None => {
                    tracing::warn!(payload = note.payload(), "store: unknown change announced");
                    ChangeEvent::Resync
                }
            },
            // The listener reconnected (and listens again) by itself.
            Ok(None) => {
                tracing::warn!("store: the listening connection was lost; reconnected");
                ChangeEvent::Resync
            }
            // Other failures leave the connection as it was: start afresh.
            Err(e) => {
                tracing::warn!(error = %e, "store: listening for changes failed; reconnecting");
                drop(listener);
                listener = relisten(pool).await;
                ChangeEvent::Resync
            }
        };
        if sender.send(event).await.is_err() {
            return;
        }
    }
}

/// A new listening connection: at once, then every `RETRY_AFTER` until the
/// database answers (the periodic full reload covers the gap).
async fn relisten(pool: &PgPool) -> PgListener {
    loop {
        match listen_on(pool).await {
            Ok(listener) => return listener,
            Err(e) => {
                tracing::warn!(error = %e, "store: cannot listen for changes; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
