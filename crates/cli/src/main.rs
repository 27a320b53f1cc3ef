//! The `gatehouse` binary: `serve`, `init`, `apply`, `export`, `check`, `mock`.

mod args;
mod declarative;
mod demo;
mod init;
mod node;
mod output;
mod serve;

use std::process::ExitCode;

use anyhow::Context;
use gatehouse_gateway::RawConfig;
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
    // GATEHOUSE_LOG_FORMAT=json: one JSON object per line, with the call's span (its request
    // id) on every event logged while the call runs.
    let json = std::env::var("GATEHOUSE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

async fn run(command: args::Command) -> anyhow::Result<ExitCode> {
    match command {
        args::Command::Check { config } => check(&config),
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
            admin_listen,
            redis,
            capture_bodies,
            node,
            demo,
            demo_key,
        } => {
            serve::run(serve::Args {
                config,
                listen,
                admin_listen,
                redis,
                capture_bodies,
                node,
                demo,
                demo_key,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        args::Command::Init { node, owner } => {
            init::run(node, &owner).await?;
            Ok(ExitCode::SUCCESS)
        }
        args::Command::Apply {
            file,
            config,
            node,
            prune,
            dry_run,
        } => {
            declarative::apply(&file, config, &node, prune, dry_run).await?;
            Ok(ExitCode::SUCCESS)
        }
        args::Command::Export {
            config,
            node,
            show_secrets,
        } => {
            declarative::export(config, &node, show_secrets).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let result = RawConfig::load(config).and_then(RawConfig::validate);
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

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
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
