//! The cost of one admission check (three limits: requests, tokens, spend) and of its settlement,
//! on the memory back end and on Redis (`GATEHOUSE_TEST_REDIS_URL`, or a throwaway
//! redis-server). Run: `cargo bench -p gatehouse-policy`. Figures go to bench/README.md.

#![expect(clippy::unwrap_used, reason = "a benchmark's set-up may fail loudly")]

use std::sync::Arc;

use gatehouse_policy::period::Period;
use gatehouse_policy::{
    resolve, Check, Demand, Limiter, Measure, OnError, Resolved, Rule, TokenCount, Window,
};

fn main() {
    divan::main();
}

fn checks(tag: &str) -> Vec<Check> {
    let rule = |measure, limit, window| {
        Arc::new(Rule {
            measure,
            limit,
            window,
        })
    };
    vec![
        Check {
            counter: format!("bench-{tag}-req"),
            rule: rule(Measure::Requests, u64::MAX / 4, Window::Rolling(3.6e9)),
            label: "requests".into(),
        },
        Check {
            counter: format!("bench-{tag}-tok"),
            rule: rule(
                Measure::Tokens(TokenCount::Total),
                u64::MAX / 4,
                Window::Rolling(3.6e9),
            ),
            label: "tokens".into(),
        },
        Check {
            counter: format!("bench-{tag}-usd"),
            rule: rule(
                Measure::Spend,
                u64::MAX / 4,
                Window::Calendar(Period::Month, jiff::tz::TimeZone::UTC),
            ),
            label: "spend".into(),
        },
    ]
}

fn demand() -> Demand {
    Demand {
        input_tokens: 100,
        output_tokens: 500,
        cost_nano: 10_000,
        lease: "bench".into(),
        lease_ttl_us: 60_000_000,
    }
}

fn setup(_l: &Limiter, tag: &str) -> Vec<Resolved> {
    resolve(&checks(tag), &demand(), gatehouse_policy::now_us()).unwrap()
}

#[divan::bench]
fn memory_admit(b: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = Limiter::memory();
    let r = setup(&l, "mem");
    b.bench_local(|| {
        rt.block_on(l.admit(&r, "bench", gatehouse_policy::now_us()))
            .unwrap()
    });
}

#[divan::bench]
fn memory_settle(b: divan::Bencher) {
    let l = Limiter::memory();
    let r = setup(&l, "mems");
    b.bench_local(|| l.settle_now(&r, &[0, -100, -5000], "bench", gatehouse_policy::now_us()));
}

fn redis_limiter(rt: &tokio::runtime::Runtime) -> Limiter {
    let url = std::env::var("GATEHOUSE_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(gatehouse_policy::testing::redis_url);
    rt.block_on(Limiter::redis(&url, OnError::Closed)).unwrap()
}

#[divan::bench]
fn redis_admit(b: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = redis_limiter(&rt);
    let r = setup(&l, "redis");
    b.bench_local(|| {
        rt.block_on(l.admit(&r, "bench", gatehouse_policy::now_us()))
            .unwrap()
    });
}

#[divan::bench]
fn redis_settle(b: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = redis_limiter(&rt);
    let r = setup(&l, "rediss");
    b.bench_local(|| {
        rt.block_on(l.settle(&r, &[0, -100, -5000], "bench", gatehouse_policy::now_us()))
    });
}
