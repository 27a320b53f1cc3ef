//! The limiter suite: every test runs on the memory back end and on Redis.

use std::sync::Arc;

use crate::period::Period;
use crate::*;

const MIN: f64 = 60_000_000.0;
const T0: i64 = 1_795_000_000_000_000;

fn check(counter: &str, measure: Measure, limit: u64, window: Window) -> Check {
    Check {
        counter: format!("{counter}-{}", crate::now_us()),
        rule: Arc::new(Rule {
            measure,
            limit,
            window,
        }),
        label: counter.to_owned(),
    }
}

fn demand(input: u64, output: u64, cost: u64, lease: &str) -> Demand {
    Demand {
        input_tokens: input,
        output_tokens: output,
        cost_nano: cost,
        lease: lease.to_owned(),
        lease_ttl_us: 60_000_000,
    }
}

async fn admit(l: &Limiter, checks: &[Check], d: &Demand, now: i64) -> (Verdict, Vec<Resolved>) {
    let r = resolve(checks, d, now).unwrap();
    (l.admit(&r, &d.lease, now).await.unwrap(), r)
}

async fn requests_refill_at_the_rate(l: Limiter) {
    let c = [check("req", Measure::Requests, 3, Window::Rolling(MIN))];
    let d = demand(0, 0, 0, "a");
    for i in 0..3 {
        let (v, _) = admit(&l, &c, &d, T0).await;
        let Verdict::Admitted(s) = v else {
            panic!("call {i} refused")
        };
        assert_eq!(s[0].remaining, 2 - i);
    }
    let (v, _) = admit(&l, &c, &d, T0).await;
    let Verdict::Refused {
        index,
        retry_after_us,
        ..
    } = v
    else {
        panic!("4th admitted")
    };
    assert_eq!(index, 0);
    assert_eq!(retry_after_us, 20_000_000);
    assert!(matches!(
        admit(&l, &c, &d, T0 + 20_000_000).await.0,
        Verdict::Admitted(_)
    ));
}

async fn all_or_none(l: Limiter) {
    let wide = check("wide", Measure::Requests, 100, Window::Rolling(MIN));
    let narrow = check("narrow", Measure::Requests, 1, Window::Rolling(MIN));
    let d = demand(0, 0, 0, "a");
    assert!(matches!(
        admit(&l, &[wide.clone(), narrow.clone()], &d, T0).await.0,
        Verdict::Admitted(_)
    ));
    let (v, r) = admit(&l, &[wide.clone(), narrow.clone()], &d, T0).await;
    assert!(matches!(v, Verdict::Refused { index: 1, .. }));
    // The refusal charged nothing: the wide counter still has 99.
    let s = l.peek(&r, T0).await.unwrap();
    assert_eq!((s[0].remaining, s[1].remaining), (99, 0));
}

async fn tokens_are_reserved_then_settled(l: Limiter) {
    let c = [check(
        "tok",
        Measure::Tokens(TokenCount::Total),
        1000,
        Window::Rolling(MIN * 60.0),
    )];
    let d = demand(100, 500, 0, "a");
    let (v, r) = admit(&l, &c, &d, T0).await;
    assert!(matches!(v, Verdict::Admitted(ref s) if s[0].remaining == 400));
    // The call used 100 + 50: the unused 450 come back.
    let deltas = corrections(
        &c,
        &r,
        &Used {
            input_tokens: 100,
            output_tokens: 50,
            cost_nano: 0,
        },
    );
    assert_eq!(deltas, [-450]);
    l.settle(&r, &deltas, "a", T0).await;
    assert_eq!(l.peek(&r, T0).await.unwrap()[0].remaining, 850);
    // A call that used more than it reserved is charged the difference.
    let (_, r2) = admit(&l, &c, &demand(100, 100, 0, "b"), T0).await;
    l.settle(
        &r2,
        &corrections(
            &c,
            &r2,
            &Used {
                input_tokens: 100,
                output_tokens: 400,
                cost_nano: 0,
            },
        ),
        "b",
        T0,
    )
    .await;
    assert_eq!(l.peek(&r2, T0).await.unwrap()[0].remaining, 350);
}

async fn budgets_hold_per_calendar_period(l: Limiter) {
    let c = [check(
        "usd",
        Measure::Spend,
        1_000,
        Window::Calendar(Period::Month, jiff::tz::TimeZone::UTC),
    )];
    let (v, r) = admit(&l, &c, &demand(0, 0, 800, "a"), T0).await;
    let Verdict::Admitted(s) = v else { panic!() };
    assert!(s[0].reset_us > 0);
    l.settle(
        &r,
        &corrections(
            &c,
            &r,
            &Used {
                cost_nano: 600,
                ..Used::default()
            },
        ),
        "a",
        T0,
    )
    .await;
    assert!(matches!(
        admit(&l, &c, &demand(0, 0, 400, "b"), T0).await.0,
        Verdict::Admitted(_)
    ));
    let (v, _) = admit(&l, &c, &demand(0, 0, 1, "c"), T0).await;
    let Verdict::Refused { retry_after_us, .. } = v else {
        panic!("over budget")
    };
    assert!(retry_after_us > 0, "until the month ends");
    // Next month is a new counter.
    let next_month = T0 + 31 * 86_400_000_000;
    assert!(matches!(
        admit(&l, &c, &demand(0, 0, 900, "d"), next_month).await.0,
        Verdict::Admitted(_)
    ));
}

async fn concurrency_leases_are_released_or_expire(l: Limiter) {
    let c = [check("conc", Measure::Concurrent, 2, Window::InFlight)];
    let (_, r) = admit(&l, &c, &demand(0, 0, 0, "a"), T0).await;
    admit(&l, &c, &demand(0, 0, 0, "b"), T0).await;
    assert!(matches!(
        admit(&l, &c, &demand(0, 0, 0, "c"), T0).await.0,
        Verdict::Refused { .. }
    ));
    l.settle(&r, &[0], "a", T0).await;
    assert!(matches!(
        admit(&l, &c, &demand(0, 0, 0, "c"), T0).await.0,
        Verdict::Admitted(_)
    ));
    // Leases of a node that died expire after their time to live.
    let later = T0 + 61_000_000;
    assert!(matches!(
        admit(&l, &c, &demand(0, 0, 0, "d"), later).await.0,
        Verdict::Admitted(_)
    ));
}

async fn concurrent_callers_never_exceed_the_limit(l: Limiter) {
    let l = Arc::new(l);
    let c = Arc::new([check(
        "race",
        Measure::Requests,
        50,
        Window::Rolling(MIN * 60.0),
    )]);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (l, c) = (Arc::clone(&l), Arc::clone(&c));
        tasks.push(tokio::spawn(async move {
            let d = demand(0, 0, 0, &format!("l{i}"));
            matches!(admit(&l, &c[..], &d, T0).await.0, Verdict::Admitted(_))
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 50);
}

async fn marks_fire_once_until_they_expire(l: Limiter) {
    let k = format!("mark-{}", crate::now_us());
    assert!(l.mark_once(&k, 60_000_000).await.unwrap());
    assert!(!l.mark_once(&k, 60_000_000).await.unwrap());
    let short = format!("{k}-short");
    assert!(l.mark_once(&short, 1_000).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(l.mark_once(&short, 1_000).await.unwrap(), "expired");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::Limiter::memory()).await;
            })*
        }
        mod on_redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let l = crate::Limiter::redis(&crate::testing::redis_url(), crate::OnError::Closed).await.unwrap();
                super::$name(l).await;
            })*
        }
    };
}

on_both!(
    requests_refill_at_the_rate,
    all_or_none,
    tokens_are_reserved_then_settled,
    budgets_hold_per_calendar_period,
    concurrency_leases_are_released_or_expire,
    concurrent_callers_never_exceed_the_limit,
    marks_fire_once_until_they_expire,
);

/// Redis dies while the node runs: fail-closed refuses, fail-open counts locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_as_configured() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut tries = 0;
    let (closed, open) = loop {
        match (
            Limiter::redis(&url, OnError::Closed).await,
            Limiter::redis(&url, OnError::Open).await,
        ) {
            (Ok(c), Ok(o)) => break (c, o),
            _ if tries < 100 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            _ => panic!("redis-server did not start"),
        }
    };
    let c = [check("outage", Measure::Requests, 1, Window::Rolling(MIN))];
    let d = demand(0, 0, 0, "a");
    let r = resolve(&c, &d, T0).unwrap();
    assert!(matches!(
        closed.admit(&r, "a", T0).await,
        Ok(Verdict::Admitted(_))
    ));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        closed.admit(&r, "b", T0).await.is_err(),
        "fail-closed refuses"
    );
    assert!(closed.failures.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(
        matches!(open.admit(&r, "c", T0).await, Ok(Verdict::Admitted(_))),
        "fail-open: local fallback"
    );
    assert!(
        matches!(open.admit(&r, "d", T0).await, Ok(Verdict::Refused { .. })),
        "the fallback still counts"
    );
}
