//! The `gatehouse` binary: `serve`, `mock`, `check`.

mod args;
mod demo;
mod output;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use gatehouse_gateway::server::{self, Stopped};
use gatehouse_gateway::{RawConfig, Snapshot};
use gatehouse_mock::MockConfig;

fn main() -> ExitCode {
    let command = args::Command::parse();
    init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run(command: args::Command) -> anyhow::Result<ExitCode> {
    match command {
        args::Command::Check { config } => {
            let result = RawConfig::load(&config).and_then(RawConfig::validate);
            match result {
                Ok(cfg) => {
                    output::line(&format!(
                        "{}: ok ({} providers, {} models, {} keys)",
                        config.display(),
                        cfg.providers.len(),
                        cfg.models.len(),
                        cfg.keys.len()
                    ));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    for (path, message) in &e.problems {
                        let at = if path.is_empty() {
                            String::new()
                        } else {
                            format!("{path}: ")
                        };
                        eprintln!("{}: {at}{message}", config.display());
                    }
                    eprintln!("{} problem(s) found", e.problems.len());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        args::Command::Mock {
            listen,
            knobs,
            expect_key,
        } => {
            let config = MockConfig {
                knobs,
                expect_key,
                ..MockConfig::default()
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(addr = %listener.local_addr()?, "mock upstream listening");
            gatehouse_mock::serve(listener, config, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        args::Command::Serve {
            config,
            listen,
            demo,
            demo_key,
        } => {
            let (raw, demo_key) = if demo {
                let key = demo_key.unwrap_or_else(demo::generate_key);
                let text = demo::start(&key).await?;
                (RawConfig::parse(&text, &|_| None)?, Some(key))
            } else {
                let path = config.context(
                    "no config: pass --config FILE (or --demo to try Gatehouse without one)",
                )?;
                (
                    RawConfig::load(&path)
                        .map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?,
                    None,
                )
            };
            let mut cfg = raw.validate()?;
            if let Some(addr) = listen {
                cfg.server.listen = addr;
            }
            let drain = cfg.server.drain_timeout;
            let addr = cfg.server.listen;
            let snapshot = Arc::new(Snapshot::build(cfg)?);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            tracing::info!(addr = %local, providers = snapshot.providers.len(), models = snapshot.models.len(), "gateway listening");
            if let Some(key) = demo_key {
                print_demo_banner(local, &key);
            }
            match server::serve(listener, snapshot, drain, shutdown_signal()).await? {
                Stopped::Drained => tracing::info!("stopped: all calls drained"),
                Stopped::DrainTimedOut => tracing::warn!("stopped: drain timeout passed"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
