//! `gatehouse serve`: the gateway, and with a store the admin API and live reload.
//!
//! Without a store the config file is everything (static keys, providers, models). With one,
//! the file's resources are applied to the store as file-managed, the snapshot is built from the
//! store plus the file's settings and static keys, a reloader keeps it current, and the admin API
//! listens beside the gateway. One shutdown signal stops all of them; the gateway drains.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use gatehouse_admin::apply::{self, Action};
use gatehouse_gateway::alerts::Alerter;
use gatehouse_gateway::config::{CaptureBodies, OnRedisError};
use gatehouse_gateway::limits::Traffic;
use gatehouse_gateway::record::CallLog;
use gatehouse_gateway::server::{self, Stopped};
use gatehouse_gateway::{reload, RawConfig, Snapshot};
use gatehouse_policy::{Limiter, OnError};
use gatehouse_store::Actor;
use tokio::sync::watch;

use crate::args::NodeFlags;
use crate::{demo, node, output};

pub(crate) struct Args {
    pub(crate) config: Option<PathBuf>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) admin_listen: Option<SocketAddr>,
    pub(crate) redis: Option<String>,
    pub(crate) capture_bodies: Option<String>,
    pub(crate) node: NodeFlags,
    pub(crate) demo: bool,
    pub(crate) demo_key: Option<String>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let (mut raw, demo_key) = if args.demo {
        let key = match args.demo_key.clone() {
            Some(k) => k,
            None => demo::generate_key()?,
        };
        let text = demo::start(&key).await?;
        (RawConfig::parse(&text, &|_| None)?, Some(key))
    } else if let Some(path) = &args.config {
        let raw = RawConfig::load(path).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
        (raw, None)
    } else {
        (RawConfig::default(), None)
    };
    if let Some(addr) = args.listen {
        raw.server.listen = Some(addr.to_string());
    }
    if let Some(addr) = args.admin_listen {
        raw.server.admin_listen = Some(addr.to_string());
    }
    if let Some(url) = &args.redis {
        raw.server.redis = Some(url.clone());
    }
    if let Some(policy) = &args.capture_bodies {
        raw.server.capture_bodies = Some(match policy.as_str() {
            "errors" => CaptureBodies::Errors,
            "full" | "all" => CaptureBodies::Full,
            _ => CaptureBodies::Off,
        });
    }
    let node = node::resolve(&args.node, &raw.server)?;
    if node.is_none() && args.config.is_none() && !args.demo {
        anyhow::bail!(
            "nothing to serve: pass --config FILE, --data-dir DIR (see `gatehouse init`), or --demo to try Gatehouse"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let (shared, server) = match node {
        None => {
            let cfg = raw.validate()?;
            let server = cfg.server.clone();
            let traffic = Traffic {
                limiter: limiter(&server).await?,
                alerter: Arc::new(Alerter::new(None)),
                metrics: Arc::default(),
                calls: None,
                tracer: tracer(&server),
            };
            let hasher = Arc::new(gatehouse_store::secrets::MasterKey::ephemeral()?);
            let snap = Snapshot::build_with(cfg, None, hasher, traffic, None)?;
            let shared = snap.into_shared();
            // No store, so no admin API; the admin listener still serves /metrics.
            match tokio::net::TcpListener::bind(server.admin_listen).await {
                Ok(l) => {
                    tracing::info!(addr = %server.admin_listen, "metrics listening (/metrics)");
                    let data = Arc::clone(&shared);
                    let until = stopped();
                    tokio::spawn(async move {
                        if let Err(e) = gatehouse_admin::serve_metrics(l, data, until).await {
                            tracing::error!(error = %e, "metrics listener stopped");
                        }
                    });
                }
                Err(e) => tracing::warn!(
                    addr = %server.admin_listen, error = %e,
                    "cannot listen for /metrics; the gateway runs without it (set server.admin_listen)"
                ),
            }
            (shared, server)
        }
        Some(node) => {
            raw.server.store = Some(node.store_url.clone());
            let store = node::open(&node).await?;
            // The file's own settings and static keys; its resources go to the store.
            let settings = RawConfig {
                server: raw.server.clone(),
                keys: raw.keys.clone(),
                catalog: raw.catalog.clone(),
                ..RawConfig::default()
            };
            let server = settings.clone().validate()?.server;
            let steps = apply::apply(
                &store,
                &raw,
                &apply::Options {
                    prune: true,
                    dry_run: false,
                    managed_by: Some("file".into()),
                    actor: Actor("gatehouse.yaml".into()),
                },
            )
            .await
            .context("cannot apply the config file's resources to the store")?;
            for step in steps.iter().filter(|s| s.action != Action::Unchanged) {
                tracing::info!(change = %step, "config file applied");
            }
            let hasher = store.shared_key();
            // The call log's spill journal lives in the data dir (else beside the master key),
            // so it survives a restart and the next start replays it.
            let spill = node
                .data_dir
                .clone()
                .or_else(|| node.master_key.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_else(|| std::path::PathBuf::from("."))
                .join("call-log.spill");
            let traffic = Traffic {
                limiter: limiter(&server).await?,
                alerter: Arc::new(Alerter::new(Some(store.clone()))),
                metrics: Arc::default(),
                calls: Some(CallLog::start(
                    store.clone(),
                    spill,
                    server.call_log.body_limit,
                )),
                tracer: tracer(&server),
            };
            tokio::spawn(gatehouse_gateway::record::retain(
                store.clone(),
                server.call_log,
            ));
            let snapshot = reload::build(&store, &settings, &hasher, &traffic, None).await?;
            let shared = snapshot.into_shared();
            tokio::spawn(gatehouse_gateway::insights::run(
                store.clone(),
                Arc::clone(&traffic.alerter),
                server.anomalies.clone(),
                Arc::clone(&shared),
            ));
            tokio::spawn(reload::run(
                store.clone(),
                settings,
                hasher,
                Arc::clone(&shared),
                stopped(),
            ));
            let admin = tokio::net::TcpListener::bind(server.admin_listen)
                .await
                .with_context(|| format!("cannot listen on {} (admin)", server.admin_listen))?;
            tracing::info!(addr = %admin.local_addr()?, store = %node::redact(&node.store_url), "admin API listening");
            let state = gatehouse_admin::AdminState {
                store,
                data: Some(Arc::clone(&shared)),
            };
            let until = stopped();
            tokio::spawn(async move {
                if let Err(e) = gatehouse_admin::serve(admin, state, until).await {
                    tracing::error!(error = %e, "admin API stopped");
                }
            });
            (shared, server)
        }
    };

    let listener = tokio::net::TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", server.listen))?;
    let local = listener.local_addr()?;
    {
        let snap = shared.load();
        tracing::info!(addr = %local, providers = snap.providers.len(), models = snap.models.len(), "gateway listening");
    }
    if let Some(key) = demo_key {
        print_demo_banner(local, &key);
    }
    let calls = shared.load().traffic.calls.clone();
    match server::serve(listener, shared, server.drain_timeout, stopped()).await? {
        Stopped::Drained => tracing::info!("stopped: all calls drained"),
        Stopped::DrainTimedOut => tracing::warn!("stopped: drain timeout passed"),
    }
    if let Some(log) = calls {
        log.drain().await;
        tracing::info!(
            written = log.stats.written.load(std::sync::atomic::Ordering::Relaxed),
            spilled = log.stats.spilled.load(std::sync::atomic::Ordering::Relaxed),
            "call log drained"
        );
    }
    Ok(())
}

/// The OTLP span exporter, when `server.tracing` names a collector.
fn tracer(
    server: &gatehouse_gateway::config::Server,
) -> Option<Arc<gatehouse_gateway::trace::Tracer>> {
    let cfg = server.tracing.clone()?;
    tracing::info!(endpoint = %cfg.endpoint, service = %cfg.service_name, "OpenTelemetry traces exported over OTLP/HTTP");
    Some(gatehouse_gateway::trace::Tracer::start(cfg))
}

/// The node's limiter: Redis when `server.redis` names one (shared by the cluster), else in
/// process.
async fn limiter(server: &gatehouse_gateway::config::Server) -> anyhow::Result<Arc<Limiter>> {
    Ok(Arc::new(match &server.redis {
        Some(url) => {
            let on_error = match server.on_redis_error {
                OnRedisError::FailClosed => OnError::Closed,
                OnRedisError::FailOpen => OnError::Open,
            };
            let l = Limiter::redis(url, on_error)
                .await
                .with_context(|| format!("cannot reach Redis at {}", node::redact(url)))?;
            tracing::info!(redis = %node::redact(url), ?on_error, "limits shared through Redis");
            l
        }
        None => Limiter::memory(),
    }))
}

fn print_demo_banner(addr: SocketAddr, key: &str) {
    output::line(&format!(
        r#"
Gatehouse demo: http://{addr}/v1  (an in-process mock plays OpenAI, Anthropic and Gemini)
  API key: {key}
  models:  demo/gpt (OpenAI dialect), demo/claude (Anthropic), demo/gemini (Gemini),
           demo/embedding, demo/gemini-embedding
Try:
  curl -s http://{addr}/v1/chat/completions \
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \
    -d '{{"model": "demo/claude", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
Stop with Ctrl-C.
"#
    ));
}
