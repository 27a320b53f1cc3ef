//! `gatehouse-bench`: the load generator of `bench/run`.
//!
//! Open loop (`--rate R`): requests are scheduled every 1/R s whatever happens to earlier ones, and
//! each latency is measured from the scheduled time, so a stalled server is charged for the queue
//! it causes (no coordinated omission). Closed loop (`--rate 0`): `--connections` workers send
//! back to back, which finds saturation throughput. `--stream` records time to first byte and to
//! the end of the stream. `hold` opens N streams and keeps them open, for memory per stream.
//! One JSON object is printed per run. It runs on one core (current-thread runtime) so that the
//! harness can pin it beside the mock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{value_parser, Arg, ArgAction, ArgMatches};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Target {
    uri: http::Uri,
    body: Bytes,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    stream: bool,
}

#[derive(Default)]
struct Stats {
    latency: Option<Histogram<u64>>,
    ttft: Option<Histogram<u64>>,
}

fn count_arg(default: &'static str) -> Arg {
    Arg::new("count")
        .long("count")
        .value_parser(value_parser!(usize))
        .default_value(default)
}

fn hold_arg() -> Arg {
    Arg::new("hold")
        .long("hold")
        .value_parser(value_parser!(u64))
        .default_value("5")
        .help("seconds")
}

fn cli() -> clap::Command {
    let common = |c: clap::Command| {
        c.arg(Arg::new("url").long("url").required(true))
            .arg(
                Arg::new("body")
                    .long("body")
                    .help("request body file (JSON)"),
            )
            .arg(
                Arg::new("header")
                    .long("header")
                    .short('H')
                    .action(ArgAction::Append),
            )
            .arg(Arg::new("stream").long("stream").action(ArgAction::SetTrue))
            .arg(
                Arg::new("connections")
                    .long("connections")
                    .value_parser(value_parser!(usize))
                    .default_value("64"),
            )
    };
    clap::Command::new("gatehouse-bench")
        .subcommand_required(true)
        .subcommand(
            common(clap::Command::new("run"))
                .arg(
                    Arg::new("rate")
                        .long("rate")
                        .value_parser(value_parser!(u64))
                        .default_value("0")
                        .help("requests per second (open loop); 0 = closed loop"),
                )
                .arg(
                    Arg::new("duration")
                        .long("duration")
                        .value_parser(value_parser!(u64))
                        .default_value("10")
                        .help("seconds"),
                )
                .arg(
                    Arg::new("warmup")
                        .long("warmup")
                        .value_parser(value_parser!(u64))
                        .default_value("1")
                        .help("seconds"),
                ),
        )
        .subcommand(
            clap::Command::new("idle")
                .about(
                    "open N keep-alive connections, make one request on each, then leave them idle",
                )
                .arg(
                    Arg::new("addr")
                        .long("addr")
                        .required(true)
                        .help("host:port"),
                )
                .arg(Arg::new("path").long("path").default_value("/health"))
                .arg(count_arg("10000"))
                .arg(hold_arg()),
        )
        .subcommand(
            common(clap::Command::new("hold"))
                .arg(count_arg("1000"))
                .arg(hold_arg()),
        )
}

fn target(m: &ArgMatches) -> anyhow::Result<Target> {
    let uri: http::Uri = m
        .get_one::<String>("url")
        .context("--url")?
        .parse()
        .context("--url")?;
    let body = match m.get_one::<String>("body") {
        Some(path) => {
            Bytes::from(std::fs::read(path).with_context(|| format!("cannot read {path}"))?)
        }
        None => Bytes::new(),
    };
    let mut headers = Vec::new();
    for h in m.get_many::<String>("header").into_iter().flatten() {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("header {h:?} is not `name: value`"))?;
        headers.push((k.trim().parse()?, v.trim().parse()?));
    }
    Ok(Target {
        uri,
        body,
        headers,
        stream: m.get_flag("stream"),
    })
}

fn client(connections: usize) -> HttpClient {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(http)
}

/// Sends one request and reads the whole body; returns (time to first body byte, total).
async fn call(client: &HttpClient, t: &Target) -> anyhow::Result<(Duration, Duration)> {
    let start = Instant::now();
    let method = if t.body.is_empty() {
        http::Method::GET
    } else {
        http::Method::POST
    };
    let mut req = http::Request::builder().method(method).uri(t.uri.clone());
    for (k, v) in &t.headers {
        req = req.header(k, v);
    }
    let req = req
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(t.body.clone()))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if first.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            first = Some(start.elapsed());
        }
    }
    if !status.is_success() {
        bail!("status {status}");
    }
    let total = start.elapsed();
    Ok((first.unwrap_or(total), total))
}

fn hist() -> anyhow::Result<Histogram<u64>> {
    // Microseconds from 1 µs to 10 min, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

fn summary(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |v: u64| v as f64 / 1000.0;
    serde_json::json!({
        "p50": ms(h.value_at_quantile(0.50)), "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)), "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()), "mean": h.mean() / 1000.0,
    })
}

async fn run(m: &ArgMatches) -> anyhow::Result<serde_json::Value> {
    let t = Arc::new(target(m)?);
    let connections = *m.get_one::<usize>("connections").unwrap_or(&64);
    let rate = *m.get_one::<u64>("rate").unwrap_or(&0);
    let duration = Duration::from_secs(*m.get_one::<u64>("duration").unwrap_or(&10));
    let warmup = Duration::from_secs(*m.get_one::<u64>("warmup").unwrap_or(&1));
    let client = client(connections);
    let stats = Arc::new(Mutex::new(Stats {
        latency: Some(hist()?),
        ttft: Some(hist()?),
    }));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let record = {
        let (stats, ok, errors) = (Arc::clone(&stats), Arc::clone(&ok), Arc::clone(&errors));
        move |res: anyhow::Result<(Duration, Duration)>, scheduled: Instant, measured: bool| {
            let (stats, ok, errors) = (Arc::clone(&stats), Arc::clone(&ok), Arc::clone(&errors));
            async move {
                if !measured {
                    return;
                }
                match res {
                    Ok((first, call_total)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        // Both from the scheduled time: a request that waited to be sent waited.
                        let total = scheduled.elapsed();
                        let ttft = total.saturating_sub(call_total) + first;
                        let mut s = stats.lock().await;
                        if let Some(h) = s.latency.as_mut() {
                            let _ = h.record(total.as_micros().max(1) as u64);
                        }
                        if let Some(h) = s.ttft.as_mut() {
                            let _ = h.record(ttft.as_micros().max(1) as u64);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    };

    let begin = Instant::now();
    let measure_from = begin + warmup;
    let end = measure_from + duration;
    let open_interval = 1_000_000_000u64.checked_div(rate).map(Duration::from_nanos);
    if let Some(interval) = open_interval {
        let in_flight = Arc::new(AtomicU64::new(0));
        let cap = (connections as u64).max(1) * 64;
        let mut next = begin;
        let mut tasks = tokio::task::JoinSet::new();
        while next < end {
            tokio::time::sleep_until(next.into()).await;
            let scheduled = next;
            next += interval;
            if in_flight.load(Ordering::Relaxed) >= cap {
                // The server is this far behind: count the request as failed rather than queue
                // without bound.
                if scheduled >= measure_from {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, t, record, in_flight) = (
                client.clone(),
                Arc::clone(&t),
                record.clone(),
                Arc::clone(&in_flight),
            );
            tasks.spawn(async move {
                let res = call(&client, &t).await;
                record(res, scheduled, scheduled >= measure_from).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    } else {
        let mut workers = Vec::new();
        for _ in 0..connections {
            let (client, t, record) = (client.clone(), Arc::clone(&t), record.clone());
            workers.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let scheduled = Instant::now();
                    let res = call(&client, &t).await;
                    record(
                        res,
                        scheduled,
                        scheduled >= measure_from && Instant::now() <= end,
                    )
                    .await;
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
    }
    let s = stats.lock().await;
    let ok = ok.load(Ordering::Relaxed);
    let mut out = serde_json::json!({
        "mode": if rate == 0 { "closed" } else { "open" },
        "rate": rate, "connections": connections, "duration_s": duration.as_secs_f64(),
        "ok": ok, "errors": errors.load(Ordering::Relaxed),
        "throughput_rps": ok as f64 / duration.as_secs_f64(),
    });
    if let Some(h) = &s.latency {
        out["latency_ms"] = summary(h);
    }
    if t.stream {
        if let Some(h) = &s.ttft {
            out["ttft_ms"] = summary(h);
        }
    }
    Ok(out)
}

/// Opens `count` streams, waits until each has sent its first byte, holds them, then reports.
async fn hold(m: &ArgMatches) -> anyhow::Result<serde_json::Value> {
    let t = Arc::new(target(m)?);
    let count = *m.get_one::<usize>("count").unwrap_or(&1000);
    let hold = Duration::from_secs(*m.get_one::<u64>("hold").unwrap_or(&5));
    let client = client(count);
    let started = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (client, t, started, failed) = (
            client.clone(),
            Arc::clone(&t),
            Arc::clone(&started),
            Arc::clone(&failed),
        );
        tasks.spawn(async move {
            let mut req = http::Request::builder()
                .method(http::Method::POST)
                .uri(t.uri.clone());
            for (k, v) in &t.headers {
                req = req.header(k, v);
            }
            let Ok(req) = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(t.body.clone()))
            else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            match client.request(req).await {
                Ok(resp) if resp.status().is_success() => {
                    let mut body = resp.into_body();
                    let mut counted = false;
                    while let Some(Ok(_)) = body.frame().await {
                        if !counted {
                            counted = true;
                            started.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while started.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < count as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_open_after = begin.elapsed();
    // Tell the harness the streams are all open: it measures the gateway's memory now.
    eprintln!("holding {} streams", started.load(Ordering::Relaxed));
    tokio::time::sleep(hold).await;
    tasks.abort_all();
    Ok(serde_json::json!({
        "streams": count, "opened": started.load(Ordering::Relaxed), "failed": failed.load(Ordering::Relaxed),
        "all_open_after_ms": all_open_after.as_secs_f64() * 1000.0,
    }))
}

/// Opens `count` keep-alive connections, each with one completed request, and holds them idle.
async fn idle(m: &ArgMatches) -> anyhow::Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = m.get_one::<String>("addr").context("--addr")?.clone();
    let path = m.get_one::<String>("path").context("--path")?.clone();
    let count = *m.get_one::<usize>("count").unwrap_or(&10000);
    let hold = Duration::from_secs(*m.get_one::<u64>("hold").unwrap_or(&5));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive\r\n\r\n");
    let mut open = Vec::with_capacity(count);
    let mut failed = 0u64;
    for _ in 0..count {
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect(&addr).await?;
            s.write_all(request.as_bytes()).await?;
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await?;
            anyhow::ensure!(buf[..n].starts_with(b"HTTP/1.1 200"), "unexpected answer");
            Ok::<_, anyhow::Error>(s)
        };
        match attempt.await {
            Ok(s) => open.push(s),
            Err(_) => failed += 1,
        }
    }
    eprintln!("holding {} idle connections", open.len());
    tokio::time::sleep(hold).await;
    Ok(serde_json::json!({"connections": count, "open": open.len(), "failed": failed}))
}

#[expect(
    clippy::print_stdout,
    reason = "the JSON result is the program's output"
)]
fn main() -> anyhow::Result<()> {
    let matches = cli().get_matches();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(async {
        match matches.subcommand() {
            Some(("hold", m)) => hold(m).await,
            Some(("idle", m)) => idle(m).await,
            Some((_, m)) => run(m).await,
            None => bail!("a subcommand is required"),
        }
    })?;
    println!("{out}");
    Ok(())
}
