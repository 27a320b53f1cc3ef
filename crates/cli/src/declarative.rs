//! `gatehouse apply` and `gatehouse export`: the store as a YAML document.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gatehouse_admin::apply::{self, Action};
use gatehouse_gateway::RawConfig;
use gatehouse_store::Actor;

use crate::args::NodeFlags;
use crate::{node, output};

/// Opens the store named by flags or by the config file's `server:` settings.
async fn store(config: Option<&Path>, flags: &NodeFlags) -> anyhow::Result<gatehouse_store::Store> {
    let server = match config {
        Some(path) => {
            RawConfig::load(path)
                .map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?
                .server
        }
        None => Default::default(),
    };
    let node = node::resolve(flags, &server)?
        .context("no store: pass --data-dir DIR or --store URL (or --config naming one)")?;
    node::open(&node).await
}

pub(crate) async fn apply(
    file: &Path,
    config: Option<PathBuf>,
    flags: &NodeFlags,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<()> {
    let doc = RawConfig::load(file).map_err(|e| anyhow::anyhow!("{}:\n{e}", file.display()))?;
    if doc.server != Default::default() || !doc.keys.is_empty() || !doc.catalog.is_empty() {
        anyhow::bail!(
            "{}: apply takes resources only (tenants, providers, models, services, apps); server settings, keys and catalog belong in the config file",
            file.display()
        );
    }
    let store = store(config.as_deref(), flags).await?;
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let steps = apply::apply(
        &store,
        &doc,
        &apply::Options {
            prune,
            dry_run,
            managed_by: None,
            actor: Actor(format!("gatehouse apply ({user})")),
        },
    )
    .await?;
    let changed = steps
        .iter()
        .filter(|s| s.action != Action::Unchanged)
        .count();
    for step in &steps {
        output::line(&step.to_string());
    }
    output::line(&format!(
        "{changed} change(s){}",
        if dry_run {
            " (dry run: nothing was changed)"
        } else {
            ""
        }
    ));
    store.close().await;
    Ok(())
}

pub(crate) async fn export(
    config: Option<PathBuf>,
    flags: &NodeFlags,
    show_secrets: bool,
) -> anyhow::Result<()> {
    let store = store(config.as_deref(), flags).await?;
    let doc = apply::export(&store, show_secrets).await?;
    let yaml = serde_norway::to_string(&doc).context("cannot write YAML")?;
    output::line(yaml.trim_end());
    store.close().await;
    Ok(())
}
