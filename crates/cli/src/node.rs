//! Where a node keeps its state, and opening it.
//!
//! The store and master key come from flags or `GATEHOUSE_*` variables first, then the config
//! file's `server:` settings: a data dir implies `sqlite://<dir>/gatehouse.db` and
//! `<dir>/master.key`; a `postgres://` store needs the master key named explicitly (or a data
//! dir that holds it).

use std::path::PathBuf;

use anyhow::Context;
use gatehouse_gateway::config::RawServer;
use gatehouse_store::secrets::MasterKey;
use gatehouse_store::Store;

use crate::args::NodeFlags;

/// The resolved locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) store_url: String,
    pub(crate) master_key: PathBuf,
    pub(crate) data_dir: Option<PathBuf>,
}

/// `None` when neither flags nor settings name a store (file-only mode).
pub(crate) fn resolve(flags: &NodeFlags, server: &RawServer) -> anyhow::Result<Option<Node>> {
    let data_dir = flags.data_dir.clone().or_else(|| server.data_dir.clone());
    let store = flags.store.clone().or_else(|| server.store.clone());
    let key = flags
        .master_key
        .clone()
        .or_else(|| server.master_key_file.clone());
    let store_url = match (&store, &data_dir) {
        (Some(url), _) => url.clone(),
        (None, Some(dir)) => format!("sqlite://{}", dir.join("gatehouse.db").display()),
        (None, None) => return Ok(None),
    };
    let master_key = match (key, &data_dir) {
        (Some(k), _) => k,
        (None, Some(dir)) => dir.join("master.key"),
        (None, None) => anyhow::bail!(
            "the store {store_url} needs a master key: pass --master-key FILE (or --data-dir DIR holding master.key)"
        ),
    };
    Ok(Some(Node {
        store_url,
        master_key,
        data_dir,
    }))
}

/// Opens an initialised store with its master key.
pub(crate) async fn open(node: &Node) -> anyhow::Result<Store> {
    if !node.master_key.exists() {
        anyhow::bail!(
            "no master key at {}: run `gatehouse init` first{}",
            node.master_key.display(),
            node.data_dir
                .as_ref()
                .map(|d| format!(" (gatehouse init --data-dir {})", d.display()))
                .unwrap_or_default()
        );
    }
    let key = MasterKey::load(&node.master_key)?;
    Store::open(&node.store_url, key)
        .await
        .with_context(|| format!("cannot open the store {}", redact(&node.store_url)))
}

/// A store URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_implies_the_sqlite_file_and_key() {
        let flags = NodeFlags {
            data_dir: Some("d".into()),
            ..NodeFlags::default()
        };
        let node = resolve(&flags, &RawServer::default()).unwrap().unwrap();
        assert_eq!(node.store_url, "sqlite://d/gatehouse.db");
        assert_eq!(node.master_key, PathBuf::from("d/master.key"));
        assert_eq!(
            resolve(&NodeFlags::default(), &RawServer::default()).unwrap(),
            None
        );
        let pg = NodeFlags {
            store: Some("postgres://u:pw@h/db".into()),
            ..NodeFlags::default()
        };
        assert!(resolve(&pg, &RawServer::default()).is_err(), "needs a key");
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
