//! The REST gateway: routes, rewrites, header rules, failover of idempotent calls, and what never
//! reaches the upstream (the client's Gatehouse key).

use serde_json::{json, Value};

use crate::harness::{start_with, KEY};

/// An upstream that answers with what it received.
async fn echo() -> std::net::SocketAddr {
    use axum::extract::Request;
    let app = axum::Router::new().fallback(|req: Request| async move {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
            .collect();
        axum::Json(json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn service(echo: std::net::SocketAddr) -> String {
    format!(
        "services:\n  - name: orders\n    kind: rest\n    state: published\n    upstreams: [{{ url: 'http://127.0.0.1:9', weight: 1 }}, {{ url: 'http://{echo}', weight: 1 }}]\n    routes:\n      - {{ path: /v2/orders, rewrite: /api/orders, methods: [GET, POST, DELETE], add_headers: {{ x-team: shop }}, remove_headers: [x-debug] }}\n      - {{ path: /health, methods: [GET], exact: true, rename_headers: {{ x-client: x-origin-client }} }}\n"
    )
}

#[tokio::test]
async fn routes_rewrite_paths_and_headers_and_keep_the_key_to_themselves() {
    let up = echo().await;
    let env = start_with(&[], "", &service(up)).await;
    let base = env.base.trim_end_matches("/v1").to_owned();
    for _ in 0..6 {
        let resp = env
            .http
            .post(format!("{base}/s/orders/v2/orders/42?expand=items"))
            .bearer_auth(KEY)
            .header("x-debug", "1")
            .header("x-client", "yes")
            .body("{\"qty\": 2}")
            .send()
            .await
            .unwrap();
        // POST is not retried: half the time the dead node answers first.
        if resp.status() == 502 {
            assert_eq!(resp.headers()["x-gatehouse-attempts"], "1");
            continue;
        }
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/api/orders/42");
        assert_eq!(v["query"], "expand=items");
        assert_eq!(v["body"], "{\"qty\": 2}");
        assert_eq!(v["headers"]["x-team"], "shop");
        assert_eq!(v["headers"]["x-client"], "yes");
        assert!(v["headers"].get("x-debug").is_none());
        assert!(
            v["headers"].get("authorization").is_none(),
            "the Gatehouse key stays here"
        );
    }
}

#[tokio::test]
async fn idempotent_calls_fail_over_and_unknown_routes_are_404() {
    let up = echo().await;
    let env = start_with(&[], "", &service(up)).await;
    let base = env.base.trim_end_matches("/v1").to_owned();
    for _ in 0..10 {
        let resp = env
            .http
            .get(format!("{base}/s/orders/health"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET fails over past the dead node");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["path"], "/health");
    }
    let renamed: Value = env
        .http
        .get(format!("{base}/s/orders/health"))
        .bearer_auth(KEY)
        .header("x-client", "probe")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["headers"]["x-origin-client"], "probe");
    assert!(renamed["headers"].get("x-client").is_none());
    let get = |path: &str| {
        env.http
            .get(format!("{base}{path}"))
            .bearer_auth(KEY)
            .send()
    };
    assert_eq!(get("/s/orders/nowhere").await.unwrap().status(), 404);
    assert_eq!(
        get("/s/orders/health/deeper").await.unwrap().status(),
        404,
        "an exact route takes only its own path"
    );
    assert_eq!(get("/s/nothing/health").await.unwrap().status(), 404);
    let put = env
        .http
        .put(format!("{base}/s/orders/health"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 400, "the route does not allow PUT");
    let anonymous = env
        .http
        .get(format!("{base}/s/orders/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn patterns_hosts_cors_json_edits_and_limits() {
    let up = echo().await;
    let svc = format!(
        "services:\n  - name: shop\n    kind: rest\n    state: published\n    upstreams: [{{ url: 'http://{up}' }}]\n    routes:\n      - {{ path: '/users/{{id}}/cart', rewrite: '/carts/{{id}}', host: shop.example.com, max_body: 64B, cors: {{ origins: ['https://app.example.com'] }}, request_body: {{ remove: [secret], rename: {{ qty: quantity }}, add: {{ source: gatehouse }} }}, response_body: {{ remove: [headers] }} }}\n      - {{ path: '/users/{{id}}/cart', rewrite: '/other/{{id}}' }}\n"
    );
    let env = start_with(&[], "", &svc).await;
    let base = env.base.trim_end_matches("/v1").to_owned();
    let url = format!("{base}/s/shop/users/7/cart/items");
    // The first route needs its host; others fall to the second route.
    let other: Value = env
        .http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["path"], "/other/7/items");
    let resp = env
        .http
        .post(&url)
        .bearer_auth(KEY)
        .header("host", "shop.example.com:8080")
        .header("origin", "https://app.example.com")
        .header("content-type", "application/json")
        .body(r#"{"qty": 3, "secret": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["path"], "/carts/7/items",
        "{{id}} carried into the rewrite"
    );
    assert!(v.get("headers").is_none(), "response field removed");
    let sent: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"quantity": 3, "source": "gatehouse"}));
    // A preflight needs no key.
    let pre = env
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("host", "shop.example.com")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    // The route's body limit.
    let big = env
        .http
        .post(&url)
        .bearer_auth(KEY)
        .header("host", "shop.example.com")
        .body("x".repeat(100))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
}

#[tokio::test]
async fn ip_lists_guard_routes_and_the_client_address_is_forwarded() {
    let up = echo().await;
    let svc = format!(
        "services:\n  - name: ips\n    kind: rest\n    state: published\n    upstreams: [{{ url: 'http://{up}' }}]\n    routes:\n      - {{ path: /denied, deny: [127.0.0.0/8] }}\n      - {{ path: /office, allow: [10.0.0.0/8] }}\n      - {{ path: /local, allow: [127.0.0.1, '::1'] }}\n"
    );
    let env = start_with(&[], "", &svc).await;
    let base = env.base.trim_end_matches("/v1").to_owned();
    let get = |p: &str| {
        env.http
            .get(format!("{base}/s/ips{p}"))
            .bearer_auth(KEY)
            .header("x-forwarded-for", "203.0.113.9")
            .send()
    };
    let denied = get("/denied").await.unwrap();
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["code"], "address_denied");
    assert_eq!(get("/office").await.unwrap().status(), 403);
    let ok = get("/local").await.unwrap();
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
}

/// An upstream that answers 500 to everything while `down` is set.
async fn flaky(down: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::net::SocketAddr {
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move || {
        let down = down.clone();
        async move {
            if down.load(std::sync::atomic::Ordering::Relaxed) {
                (http::StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()
            } else {
                axum::Json(json!({"node": "flaky"})).into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn active_probes_take_a_failing_node_out_and_bring_it_back() {
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let bad = flaky(down.clone()).await;
    let good = echo().await;
    let svc = format!(
        "services:\n  - name: probed\n    kind: rest\n    state: published\n    upstreams: [{{ url: 'http://{bad}' }}, {{ url: 'http://{good}' }}]\n    health_check: {{ path: /health, interval: 20ms, timeout: 500ms }}\n    routes: [{{ path: / }}]\n"
    );
    let env = start_with(&[], "", &svc).await;
    let base = env.base.trim_end_matches("/v1").to_owned();
    let post = || {
        env.http
            .post(format!("{base}/s/probed/thing"))
            .bearer_auth(KEY)
            .send()
    };
    // POSTs are not retried: only once the probes have ejected the failing node do they all
    // succeed.
    let mut streak = 0;
    for _ in 0..500 {
        if post().await.unwrap().status() == 200 {
            streak += 1;
            if streak == 20 {
                break;
            }
        } else {
            streak = 0;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(streak, 20, "the failing node was taken out");
    // It recovers: a probe closes its circuit and it serves again.
    down.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut back = false;
    for _ in 0..1000 {
        let v: Value = post().await.unwrap().json().await.unwrap_or_default();
        if v["node"] == "flaky" {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(back, "the recovered node gets traffic again");
}

/// An upstream that accepts `Upgrade: echo` and then echoes bytes.
async fn upgrade_echo() -> std::net::SocketAddr {
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(|mut req: axum::extract::Request| async move {
        if !req.headers().contains_key("upgrade") {
            return (http::StatusCode::BAD_REQUEST, "no upgrade").into_response();
        }
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(io) = on.await {
                let io = hyper_util::rt::TokioIo::new(io);
                let (mut r, mut w) = tokio::io::split(io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        http::Response::builder()
            .status(http::StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(axum::body::Body::empty())
            .unwrap()
            .into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn protocol_upgrades_pass_through_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = upgrade_echo().await;
    let svc = format!(
        "services:\n  - name: live\n    kind: rest\n    state: published\n    upstreams: [{{ url: 'http://{up}' }}]\n    routes: [{{ path: /socket }}]\n"
    );
    let env = start_with(&[], "", &svc).await;
    let gateway = env
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&gateway).await.unwrap();
    tcp.write_all(
        format!(
            "GET /s/live/socket HTTP/1.1\r\nHost: {gateway}\r\nAuthorization: Bearer {KEY}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for msg in ["hello", "through the gateway"] {
        tcp.write_all(msg.as_bytes()).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tcp.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg.as_bytes());
    }
}

#[tokio::test]
async fn node_strategies_and_retry_rules_are_per_service() {
    let up = echo().await;
    let svc = format!(
        "services:\n  - name: eager\n    kind: rest\n    state: published\n    strategy: ordered\n    retry: all\n    upstreams: [{{ url: 'http://127.0.0.1:9' }}, {{ url: 'http://{up}' }}]\n    routes: [{{ path: / }}]\n  - name: careful\n    kind: rest\n    state: published\n    strategy: ordered\n    retry: none\n    upstreams: [{{ url: 'http://127.0.0.1:9' }}, {{ url: 'http://{up}' }}]\n    routes: [{{ path: / }}]\n"
    );
    let env = start_with(&[], "", &svc).await;
    let base = env.base.trim_end_matches("/v1").to_owned();
    let post = env
        .http
        .post(format!("{base}/s/eager/x"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200, "retry: all fails a POST over");
    assert_eq!(post.headers()["x-gatehouse-attempts"], "2");
    let get = env
        .http
        .get(format!("{base}/s/careful/x"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 502, "retry: none sends even a GET once");
    assert_eq!(get.headers()["x-gatehouse-attempts"], "1");
}

#[tokio::test]
async fn bodies_that_are_sent_once_stream_through() {
    let up = echo().await;
    let svc = format!(
        "services:\n  - name: upload\n    kind: rest\n    state: published\n    upstreams: [{{ url: 'http://{up}' }}]\n    routes: [{{ path: /files, max_body: 300KiB }}]\n"
    );
    let env = start_with(&[], "", &svc).await;
    let base = env.base.trim_end_matches("/v1").to_owned();
    // A chunked upload (no length): streamed to the node as it comes.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..50)
        .map(|i| Ok(bytes::Bytes::from(format!("{i:04}").repeat(1000))))
        .collect();
    let resp = env
        .http
        .post(format!("{base}/s/upload/files"))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["body"].as_str().unwrap().len(), 200_000);
    // A declared length over the route's limit is refused before anything is sent.
    let big = env
        .http
        .post(format!("{base}/s/upload/files"))
        .bearer_auth(KEY)
        .body(vec![b'x'; 400 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
}
