//! Command-line parsing in two steps: clap's builder reads the words, then `Command::from_matches`
//! turns them into a typed command. (clap's derive macros would pull a second `syn` into every
//! build; the builder API costs nothing extra.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ArgMatches};
use gatehouse_mock::{Fault, Knobs};

/// What the user asked the binary to do.
pub(crate) enum Command {
    Serve {
        config: Option<PathBuf>,
        listen: Option<SocketAddr>,
        demo: bool,
        demo_key: Option<String>,
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
        .subcommand(
            clap::Command::new("serve")
                .about("Run the gateway")
                .arg(
                    Arg::new("config")
                        .long("config")
                        .short('c')
                        .env("GATEHOUSE_CONFIG")
                        .value_parser(value_parser!(PathBuf))
                        .conflicts_with("demo")
                        .help("The config file (see docs/configuration.md)"),
                )
                .arg(
                    Arg::new("listen")
                        .long("listen")
                        .env("GATEHOUSE_LISTEN")
                        .value_parser(value_parser!(SocketAddr))
                        .help("Listen address of the gateway, overriding server.listen"),
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
        )
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
            Some(("check", m)) => Self::Check {
                config: m.get_one::<PathBuf>("config").cloned().unwrap_or_default(),
            },
            // `serve` is the only other subcommand clap lets through.
            Some((_, m)) => Self::Serve {
                config: m.get_one::<PathBuf>("config").cloned(),
                listen: m.get_one::<SocketAddr>("listen").copied(),
                demo: m.get_flag("demo"),
                demo_key: m.get_one::<String>("demo-key").cloned(),
            },
            None => Self::Serve {
                config: None,
                listen: None,
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
    }
}
