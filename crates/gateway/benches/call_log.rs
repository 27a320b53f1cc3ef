//! The call log's sustained write rate (records/s through the real pipeline: queue, batches,
//! rollups) into SQLite and PostgreSQL, and the latency of the analytics API's queries on a
//! store holding millions of records. A benchmark, not a test: nothing here is asserted.
//!
//! ```sh
//! cargo bench -p gatehouse-gateway --bench call_log                # 10 M records into SQLite
//! GATEHOUSE_BENCH_RECORDS=1000000 cargo bench -p gatehouse-gateway --bench call_log
//! GATEHOUSE_BENCH_POSTGRES_URL=postgres://… cargo bench -p gatehouse-gateway --bench call_log
//! GATEHOUSE_BENCH_SQLITE=0 GATEHOUSE_BENCH_POSTGRES_URL=… GATEHOUSE_BENCH_RECORDS=2000000 …  # PostgreSQL alone
//! ```
//!
//! Records are spread evenly over the last 30 days: 500 keys in 100 apps of 20 tenants,
//! 10 models on 4 providers (a key calls its own model 4 times in 5, any other the fifth),
//! 97 % answered, 2 % 429, 1 % 500, a third of them streams. Windows are whole minutes, hours or
//! days as the analytics API makes them.

#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary: it prints its figures, and a failure ends it"
)]

use std::time::{Duration, Instant};

use gatehouse_gateway::record::CallLog;
use gatehouse_store::{Aggregate, CallFilter, CallRecord, Dim, Rank, StatusFilter, Store};

const DAY: i64 = 86_400_000;

fn record(i: u64, n: u64, now: i64, rng: &mut fastrand::Rng) -> CallRecord {
    let span = 30 * DAY;
    let at = now - span + i64::try_from(i * u64::try_from(span).unwrap() / n).unwrap();
    let key = rng.u32(0..500);
    let app = key % 100;
    let tenant = app % 20;
    // A key mostly calls its own model.
    let model = if rng.u32(0..5) == 0 {
        rng.u32(0..10)
    } else {
        key % 10
    };
    let roll = rng.u32(0..100);
    let status = match roll {
        0 => 500,
        1..=2 => 429,
        _ => 200,
    };
    let stream = rng.u32(0..3) == 0;
    let duration = i64::from(rng.u32(40..3000));
    let input = i64::from(rng.u32(20..4000));
    let output = if status == 200 {
        i64::from(rng.u32(10..800))
    } else {
        0
    };
    CallRecord {
        id: format!("cal_{at:013}{i:012}"),
        request_id: format!("req-{i}"),
        at,
        tenant_id: Some(format!("ten_{tenant:04}")),
        app_id: Some(format!("app_{app:04}")),
        key_id: format!("gatehouse_key{key:04}"),
        surface: "chat".into(),
        dialect: "openai".into(),
        service: Some("chat-api".into()),
        model_asked: format!("model-{model}"),
        model_served: Some(format!("upstream-{model}")),
        provider: Some(format!("provider-{}", model % 4)),
        status,
        error_code: (status != 200).then(|| status.to_string()),
        stream,
        duration_ms: duration,
        upstream_ms: duration - 1,
        overhead_us: i64::from(rng.u32(80..400)),
        ttft_ms: stream.then_some(duration / 4),
        input_tokens: input,
        output_tokens: output,
        cost_nano: input * 150 + output * 600,
        client_ip: Some("10.0.0.7".into()),
        user_agent: Some("OpenAI/Python 1.99.0".into()),
        tags: vec!["bench".into()],
        ..CallRecord::default()
    }
}

/// Feeds `n` records through the call log as fast as it takes them (never overflowing its
/// queue into the journal); returns records/s from the first record to the last one written.
async fn load(store: &Store, dir: &std::path::Path, n: u64, first: u64, total: u64) -> f64 {
    let log = CallLog::start_with(store.clone(), dir.join("bench.spill"), 16 * 1024, 50_000);
    let now = gatehouse_store::ids::now_ms();
    let mut rng = fastrand::Rng::with_seed(first);
    let started = Instant::now();
    for i in first..first + n {
        while log.queued() > 45_000 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        log.record(record(i, total, now, &mut rng));
    }
    log.drain().await;
    let took = started.elapsed().as_secs_f64();
    let s = &log.stats;
    let spilled = s.spilled.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        spilled, 0,
        "the benchmark must not overflow into the journal"
    );
    n as f64 / took
}

async fn time<T>(label: &str, runs: usize, mut f: impl AsyncFnMut() -> T) -> f64 {
    let mut ms = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f().await);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    println!("| {label} | {median:.1} ms | {:.1} ms |", ms[ms.len() - 1]);
    median
}

/// `t` rounded down and `now` up to whole `unit`s, as the analytics API does.
fn whole(t: i64, now: i64, unit: i64) -> (i64, i64) {
    (t - t.rem_euclid(unit), now - now.rem_euclid(unit) + unit)
}

async fn queries(store: &Store) {
    let now = gatehouse_store::ids::now_ms();
    let hour = 3_600_000;
    println!("| query | median | worst of 5 |\n|---|---|---|");
    time("series, last 24 h, 5 min steps, by model", 5, async || {
        store
            .aggregate(&Aggregate {
                from: whole(now - DAY, now, 300_000).0,
                to: whole(now - DAY, now, 300_000).1,
                group_by: vec![Dim::Model],
                step_ms: Some(300_000),
                ..Aggregate::default()
            })
            .await
            .unwrap()
            .len()
    })
    .await;
    time("series, last 7 days, 1 h steps, by tenant", 5, async || {
        store
            .aggregate(&Aggregate {
                from: whole(now - 7 * DAY, now, hour).0,
                to: whole(now - 7 * DAY, now, hour).1,
                group_by: vec![Dim::Tenant],
                step_ms: Some(3_600_000),
                ..Aggregate::default()
            })
            .await
            .unwrap()
            .len()
    })
    .await;
    time("totals, last 30 days, by status", 5, async || {
        store
            .aggregate(&Aggregate {
                from: whole(now - 30 * DAY, now, DAY).0,
                to: whole(now - 30 * DAY, now, DAY).1,
                group_by: vec![Dim::Status],
                ..Aggregate::default()
            })
            .await
            .unwrap()
            .len()
    })
    .await;
    time("top 10 keys by cost, last 30 days", 5, async || {
        store
            .aggregate(&Aggregate {
                from: whole(now - 30 * DAY, now, DAY).0,
                to: whole(now - 30 * DAY, now, DAY).1,
                group_by: vec![Dim::Key],
                top: Some((Rank::Cost, 10)),
                ..Aggregate::default()
            })
            .await
            .unwrap()
            .len()
    })
    .await;
    time(
        "one tenant's series, last 24 h, 1 min steps",
        5,
        async || {
            store
                .aggregate(&Aggregate {
                    from: whole(now - DAY, now, 60_000).0,
                    to: whole(now - DAY, now, 60_000).1,
                    tenant_ids: Some(vec!["ten_0003".into()]),
                    step_ms: Some(60_000),
                    ..Aggregate::default()
                })
                .await
                .unwrap()
                .len()
        },
    )
    .await;
    time("log search: newest 50 calls", 5, async || {
        store
            .list_calls(&CallFilter {
                limit: 50,
                ..CallFilter::default()
            })
            .await
            .unwrap()
            .items
            .len()
    })
    .await;
    time("log search: newest 50 of one key", 5, async || {
        store
            .list_calls(&CallFilter {
                key_id: Some("gatehouse_key0042".into()),
                limit: 50,
                ..CallFilter::default()
            })
            .await
            .unwrap()
            .items
            .len()
    })
    .await;
    time(
        "log search: newest 50 errors (5xx) of one tenant",
        5,
        async || {
            store
                .list_calls(&CallFilter {
                    tenant_ids: Some(vec!["ten_0007".into()]),
                    status: Some(StatusFilter::Class(5)),
                    limit: 50,
                    ..CallFilter::default()
                })
                .await
                .unwrap()
                .items
                .len()
        },
    )
    .await;
}

async fn run(name: &str, url: &str, dir: &std::path::Path, total: u64) {
    let key = gatehouse_store::secrets::MasterKey::ephemeral().unwrap();
    let store = Store::open(url, key).await.unwrap();
    // The write rate on an empty store, then the rest loaded the same way.
    let first = total.min(500_000);
    let rate = load(&store, dir, first, 0, total).await;
    println!("\n## {name}\n\nwrite rate through the call log (empty store, {first} records): **{rate:.0} records/s**");
    if total > first {
        let t = Instant::now();
        let rate_full = load(&store, dir, total - first, first, total).await;
        println!(
            "loaded to {total} records in {:.0} s; write rate while growing: **{rate_full:.0} records/s**\n",
            t.elapsed().as_secs_f64()
        );
    }
    queries(&store).await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let total: u64 = std::env::var("GATEHOUSE_BENCH_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000_000);
        let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        println!("# Call log benchmark\n\n{total} records spread over 30 days");
        if std::env::var("GATEHOUSE_BENCH_SQLITE").as_deref() != Ok("0") {
            let sqlite = format!("sqlite://{}", dir.join("bench.db").display());
            run("SQLite", &sqlite, &dir, total).await;
        }
        if let Ok(pg) = std::env::var("GATEHOUSE_BENCH_POSTGRES_URL") {
            let pg_total: u64 = std::env::var("GATEHOUSE_BENCH_POSTGRES_RECORDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(total);
            run("PostgreSQL", &pg, &dir, pg_total).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
