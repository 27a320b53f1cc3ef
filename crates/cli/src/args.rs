//! Command-line parsing in two steps: clap's builder reads the words, then `Command::from_matches`
//! turns them into a typed command. (clap's derive macros would pull a second `syn` into every
//! build; the builder API costs nothing extra.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ArgMatches};
use gatehouse_mock::{Fault, Knobs};

/// Where the node keeps its state: flags and `GATEHOUSE_*` variables, over `server:` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodeFlags {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) store: Option<String>,
    pub(crate) master_key: Option<PathBuf>,
}

/// What the user asked the binary to do.
pub(crate) enum Command {
    Serve {
        config: Option<PathBuf>,
        listen: Option<SocketAddr>,
        admin_listen: Option<SocketAddr>,
        redis: Option<String>,
        capture_bodies: Option<String>,
        node: NodeFlags,
        demo: bool,
        demo_key: Option<String>,
    },
    Init {
        node: NodeFlags,
        owner: String,
    },
    Apply {
        file: PathBuf,
        config: Option<PathBuf>,
        node: NodeFlags,
        prune: bool,
        dry_run: bool,
    },
    Export {
        config: Option<PathBuf>,
        node: NodeFlags,
        show_secrets: bool,
    },
    Mock {
        listen: SocketAddr,
        knobs: Knobs,
        expect_key: Option<String>,
    },
    Check {
        config: PathBuf,
    },
}

/// `--data-dir`, `--store`, `--master-key`: where the store and its key are.
fn node_args(cmd: clap::Command) -> clap::Command {
    cmd.arg(
        Arg::new("data-dir")
            .long("data-dir")
            .env("GATEHOUSE_DATA_DIR")
            .value_parser(value_parser!(PathBuf))
            .help("The directory `gatehouse init` made (SQLite store and master key)"),
    )
    .arg(
        Arg::new("store")
            .long("store")
            .env("GATEHOUSE_STORE_URL")
            .help(
            "The store's URL when it is not the data dir's SQLite file, e.g. postgres://host/db",
        ),
    )
    .arg(
        Arg::new("master-key")
            .long("master-key")
            .env("GATEHOUSE_MASTER_KEY_FILE")
            .value_parser(value_parser!(PathBuf))
            .help("The master key file (default <data-dir>/master.key)"),
    )
}

fn node_flags(m: &ArgMatches) -> NodeFlags {
    NodeFlags {
        data_dir: m.get_one::<PathBuf>("data-dir").cloned(),
        store: m.get_one::<String>("store").cloned(),
        master_key: m.get_one::<PathBuf>("master-key").cloned(),
    }
}

fn config_arg() -> Arg {
    Arg::new("config")
        .long("config")
        .short('c')
        .env("GATEHOUSE_CONFIG")
        .value_parser(value_parser!(PathBuf))
        .help("The config file (see docs/configuration.md)")
}

fn cli() -> clap::Command {
    let ms = |name: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_parser(value_parser!(u64))
            .default_value("0")
            .help(help)
    };
    clap::Command::new("gatehouse")
        .version(env!("CARGO_PKG_VERSION"))
        .about("An AI gateway: one OpenAI-compatible endpoint in front of every model provider")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(node_args(
            clap::Command::new("serve")
                .about("Run the gateway (and, with a store, the admin API)")
                .arg(config_arg().conflicts_with("demo"))
                .arg(
                    Arg::new("listen")
                        .long("listen")
                        .env("GATEHOUSE_LISTEN")
                        .value_parser(value_parser!(SocketAddr))
                        .help("Listen address of the gateway, overriding server.listen"),
                )
                .arg(
                    Arg::new("redis")
                        .long("redis")
                        .env("GATEHOUSE_REDIS_URL")
                        .help("Redis shared by the cluster's nodes, overriding server.redis"),
                )
                .arg(
                    Arg::new("capture-bodies")
                        .long("capture-bodies")
                        .env("GATEHOUSE_CAPTURE_BODIES")
                        .value_parser(["off", "metadata", "errors", "full", "all"])
                        .help("Which bodies call records keep, overriding server.capture_bodies"),
                )
                .arg(
                    Arg::new("admin-listen")
                        .long("admin-listen")
                        .env("GATEHOUSE_ADMIN_LISTEN")
                        .value_parser(value_parser!(SocketAddr))
                        .help("Listen address of the admin API, overriding server.admin_listen"),
                )
                .arg(
                    Arg::new("demo")
                        .long("demo")
                        .action(ArgAction::SetTrue)
                        .help("Run a demo with an in-process mock provider; needs no config and no credentials"),
                )
                .arg(
                    Arg::new("demo-key")
                        .long("demo-key")
                        .requires("demo")
                        .help("The client API key of the demo (default: a random one, printed at start)"),
                ),
        ))
        .subcommand(node_args(
            clap::Command::new("init")
                .about("Create a store, its master key and an owner whose password is printed once")
                .arg(
                    Arg::new("owner")
                        .long("owner")
                        .default_value("owner")
                        .help("The owner's username"),
                ),
        ))
        .subcommand(node_args(
            clap::Command::new("apply")
                .about("Make the store hold the resources of a YAML file; prints what changes")
                .arg(
                    Arg::new("file")
                        .short('f')
                        .long("file")
                        .required(true)
                        .value_parser(value_parser!(PathBuf))
                        .help("Resources: tenants, providers, models, services, apps"),
                )
                .arg(config_arg().help("A config file whose server: settings name the store"))
                .arg(
                    Arg::new("prune")
                        .long("prune")
                        .action(ArgAction::SetTrue)
                        .help("Also delete resources the file does not name (never file-managed ones)"),
                )
                .arg(
                    Arg::new("dry-run")
                        .long("dry-run")
                        .action(ArgAction::SetTrue)
                        .help("Print what would change, and change nothing"),
                ),
        ))
        .subcommand(node_args(
            clap::Command::new("export")
                .about("Print the store's resources as YAML in the schema apply reads")
                .arg(config_arg().help("A config file whose server: settings name the store"))
                .arg(
                    Arg::new("show-secrets")
                        .long("show-secrets")
                        .action(ArgAction::SetTrue)
                        .help("Print provider credentials in clear (default: masked to the last 4 characters)"),
                ),
        ))
        .subcommand(
            clap::Command::new("mock")
                .about("Run the mock upstream (OpenAI, Anthropic and Gemini dialects) for tests and benchmarks")
                .arg(
                    Arg::new("listen")
                        .long("listen")
                        .value_parser(value_parser!(SocketAddr))
                        .default_value("127.0.0.1:9090"),
                )
                .arg(ms("latency-ms", "Delay before each response, in milliseconds"))
                .arg(ms("ttft-ms", "Extra delay before the first streamed chunk, in milliseconds"))
                .arg(ms("chunk-delay-ms", "Delay between streamed chunks, in milliseconds"))
                .arg(
                    Arg::new("tokens")
                        .long("tokens")
                        .value_parser(value_parser!(u32))
                        .default_value("16")
                        .help("Output tokens per answer"),
                )
                .arg(
                    Arg::new("fault")
                        .long("fault")
                        .value_parser(|s: &str| s.parse::<Fault>())
                        .help("A fault for every request: an HTTP status (429, 500, 503…), `malformed` or `drop`"),
                )
                .arg(
                    Arg::new("retry-after")
                        .long("retry-after")
                        .value_parser(value_parser!(u32))
                        .default_value("1")
                        .help("`retry-after` seconds sent with 429 and 503 faults"),
                )
                .arg(
                    Arg::new("expect-key")
                        .long("expect-key")
                        .help("Require this API key in each dialect's auth header"),
                ),
        )
        .subcommand(
            clap::Command::new("check")
                .about("Validate a config file and report every problem with its path")
                .arg(
                    Arg::new("config")
                        .long("config")
                        .short('c')
                        .required(true)
                        .value_parser(value_parser!(PathBuf)),
                ),
        )
}

impl Command {
    /// Parses the process arguments; prints help or a usage error and exits on bad input.
    pub(crate) fn parse() -> Self {
        Self::from_matches(&cli().get_matches())
    }

    fn from_matches(m: &ArgMatches) -> Self {
        let ms = |m: &ArgMatches, name: &str| {
            Duration::from_millis(m.get_one::<u64>(name).copied().unwrap_or(0))
        };
        match m.subcommand() {
            Some(("mock", m)) => Self::Mock {
                listen: m
                    .get_one::<SocketAddr>("listen")
                    .copied()
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))),
                knobs: Knobs {
                    latency: ms(m, "latency-ms"),
                    ttft: ms(m, "ttft-ms"),
                    chunk_delay: ms(m, "chunk-delay-ms"),
                    tokens: m.get_one::<u32>("tokens").copied().unwrap_or(16),
                    fault: m.get_one::<Fault>("fault").copied(),
                    retry_after: m.get_one::<u32>("retry-after").copied().unwrap_or(1),
                },
                expect_key: m.get_one::<String>("expect-key").cloned(),
            },
            Some(("init", m)) => Self::Init {
                node: node_flags(m),
                owner: m
                    .get_one::<String>("owner")
                    .cloned()
                    .unwrap_or_else(|| "owner".into()),
            },
            Some(("apply", m)) => Self::Apply {
                file: m.get_one::<PathBuf>("file").cloned().unwrap_or_default(),
                config: m.get_one::<PathBuf>("config").cloned(),
                node: node_flags(m),
                prune: m.get_flag("prune"),
                dry_run: m.get_flag("dry-run"),
            },
            Some(("export", m)) => Self::Export {
                config: m.get_one::<PathBuf>("config").cloned(),
                node: node_flags(m),
                show_secrets: m.get_flag("show-secrets"),
            },
            Some(("check", m)) => Self::Check {
                config: m.get_one::<PathBuf>("config").cloned().unwrap_or_default(),
            },
            // `serve` is the only other subcommand clap lets through.
            Some((_, m)) => Self::Serve {
                config: m.get_one::<PathBuf>("config").cloned(),
                listen: m.get_one::<SocketAddr>("listen").copied(),
                admin_listen: m.get_one::<SocketAddr>("admin-listen").copied(),
                redis: m.get_one::<String>("redis").cloned(),
                capture_bodies: m.get_one::<String>("capture-bodies").cloned(),
                node: node_flags(m),
                demo: m.get_flag("demo"),
                demo_key: m.get_one::<String>("demo-key").cloned(),
            },
            None => Self::Serve {
                config: None,
                listen: None,
                admin_listen: None,
                redis: None,
                capture_bodies: None,
                node: NodeFlags::default(),
                demo: false,
                demo_key: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        cli()
            .try_get_matches_from(args)
            .map(|m| Command::from_matches(&m))
    }

    #[test]
    fn the_command_line_is_checked_by_clap() {
        cli().debug_assert();
        assert!(matches!(
            parse(&["gatehouse", "serve", "--demo"]),
            Ok(Command::Serve { demo: true, .. })
        ));
        assert!(
            parse(&["gatehouse", "serve", "--demo", "--config", "x.yaml"]).is_err(),
            "conflict"
        );
        assert!(
            parse(&["gatehouse", "serve", "--demo-key", "k"]).is_err(),
            "demo-key needs --demo"
        );
        assert!(parse(&["gatehouse", "serve", "--listen", "nope"]).is_err());
        assert!(parse(&["gatehouse", "mock", "--fault", "teapot"]).is_err());
        let Ok(Command::Mock { knobs, listen, .. }) = parse(&[
            "gatehouse",
            "mock",
            "--fault",
            "429",
            "--chunk-delay-ms",
            "5",
            "--listen",
            "127.0.0.1:1",
        ]) else {
            panic!("mock did not parse")
        };
        assert_eq!(knobs.fault, Some(Fault::Status(429)));
        assert_eq!(knobs.chunk_delay, Duration::from_millis(5));
        assert_eq!(listen.port(), 1);
        assert!(
            parse(&["gatehouse", "check"]).is_err(),
            "check needs --config"
        );
        assert!(parse(&["gatehouse", "apply"]).is_err(), "apply needs -f");
        let Ok(Command::Apply {
            prune,
            dry_run,
            node,
            ..
        }) = parse(&[
            "gatehouse",
            "apply",
            "-f",
            "r.yaml",
            "--prune",
            "--dry-run",
            "--data-dir",
            "d",
        ])
        else {
            panic!("apply did not parse")
        };
        assert!(prune && dry_run);
        assert_eq!(node.data_dir, Some(PathBuf::from("d")));
        assert!(matches!(
            parse(&["gatehouse", "init", "--data-dir", "d"]),
            Ok(Command::Init { ref owner, .. }) if owner == "owner"
        ));
    }
}
