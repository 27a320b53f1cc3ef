//! Keeps the data plane's snapshot in step with the store.
//!
//! A snapshot is the file's settings and static keys plus everything in the store. The reloader
//! rebuilds it when the store's revision moves — told at once by this process's own writes
//! (SQLite and PostgreSQL) or by other nodes' `NOTIFY` (PostgreSQL), and otherwise found by
//! polling the revision every second — and swaps it in. A rebuild that fails (the store is
//! unreachable, or holds something invalid) is logged and the current snapshot stays.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::secrets::MasterKey;
use gatehouse_store::{Store, StoreError};

use crate::config::RawConfig;
use crate::error::ConfigError;
use crate::limits::Traffic;
use crate::snapshot::{Shared, Snapshot, SnapshotError};
use crate::stored;

/// How often the revision is polled when no notification arrives.
pub const POLL: Duration = Duration::from_secs(1);

/// Why a snapshot could not be built from the store.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the stored configuration is invalid:\n{0}")]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Builds a snapshot of `file` plus the store's contents.
pub async fn build(
    store: &Store,
    file: &RawConfig,
    hasher: &Arc<MasterKey>,
    traffic: &Traffic,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, ReloadError> {
    let stored = stored::load(store).await?;
    let cfg = stored.merged_into(file.clone()).validate()?;
    Ok(Snapshot::build_with(
        cfg,
        Some(&stored),
        Arc::clone(hasher),
        traffic.clone(),
        previous,
    )?)
}

/// Rebuilds and swaps the snapshot whenever the store changes, until `shutdown` resolves.
pub async fn run(
    store: Store,
    file: RawConfig,
    hasher: Arc<MasterKey>,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) {
    let mut own_writes = store.watch();
    let mut listener = match store.listen().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for other nodes' changes; polling only");
            None
        }
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let notified = async {
            match listener.as_mut() {
                Some(l) => {
                    if let Err(e) = l.recv().await {
                        tracing::warn!(error = %e, "LISTEN connection lost; it reconnects on the next poll");
                        tokio::time::sleep(POLL).await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            r = own_writes.changed() => if r.is_err() { return },
            () = notified => {},
            _ = tick.tick() => {},
        }
        let current = shared.load_full();
        match store.revision().await {
            Ok(rev) if rev == current.revision => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's revision; serving the current snapshot");
                continue;
            }
        }
        match build(&store, &file, &hasher, &current.traffic, Some(&current)).await {
            Ok(next) => {
                tracing::info!(
                    revision = next.revision,
                    keys = next.keys.len(),
                    models = next.models.len(),
                    "configuration reloaded"
                );
                shared.store(Arc::new(next));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot rebuild the snapshot; serving the current one")
            }
        }
    }
}
