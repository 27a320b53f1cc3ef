//! `gatehouse init`: a new store, its master key, and the owner.

use anyhow::Context;
use gatehouse_store::secrets::MasterKey;
use gatehouse_store::{Actor, Store};

use crate::args::NodeFlags;
use crate::{node, output};

pub(crate) async fn run(flags: NodeFlags, owner: &str) -> anyhow::Result<()> {
    let flags = NodeFlags {
        data_dir: flags.data_dir.or_else(|| Some("gatehouse-data".into())),
        ..flags
    };
    let node = node::resolve(&flags, &Default::default())?
        .context("no store: pass --data-dir DIR or --store URL")?;
    if node.master_key.exists() {
        anyhow::bail!(
            "{} exists: this node is already initialised (nothing was changed)",
            node.master_key.display()
        );
    }
    if let Some(dir) = &node.data_dir {
        create_private_dir(dir)?;
    }
    // Look before creating anything: a store that has users belongs to another install.
    let probe = Store::open(&node.store_url, MasterKey::ephemeral()?)
        .await
        .with_context(|| format!("cannot open the store {}", node::redact(&node.store_url)))?;
    if !probe.list_users().await?.is_empty() {
        anyhow::bail!(
            "the store {} already has users: it was initialised with another master key",
            node::redact(&node.store_url)
        );
    }
    probe.close().await;
    let key = MasterKey::create(&node.master_key)?;
    let store = Store::open(&node.store_url, key).await?;
    let password = gatehouse_store::ids::random_base62(24)?;
    store
        .create_user(owner, &password, true, &Actor("gatehouse init".into()))
        .await?;
    store.close().await;
    output::line(&format!(
        "Initialised Gatehouse.\n  store:      {}\n  master key: {} (keep it safe: it decrypts stored credentials)\n  owner:      {owner}\n  password:   {password}\n\nThe password is shown only this once. Next:\n  gatehouse serve{}",
        node::redact(&node.store_url),
        node.master_key.display(),
        node.data_dir
            .as_ref()
            .map(|d| format!(" --data-dir {}", d.display()))
            .unwrap_or_default(),
    ));
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    Ok(())
}
