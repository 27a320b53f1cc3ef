//! The REST gateway: `/s/{service}/…` proxied to a REST service's upstream nodes.
//!
//! A call is authenticated and authorised like an AI call (the key's app needs an approved
//! subscription to the service, or the service is its tenant's), counted by the policies that
//! apply to the service, matched to the first route whose prefix and methods fit, and sent to the
//! service's nodes in weighted order, passing over ejected ones. Idempotent methods (GET, HEAD,
//! OPTIONS, PUT, DELETE) move on to the next node when one cannot be reached or answers 502, 503
//! or 504; others are sent once. The request body is read (bounded by `server.max_body`) so a
//! retry can resend it; the response body streams back as it comes. The client's `Authorization`
//! (its Gatehouse key) never reaches the upstream; hop-by-hop headers are dropped and
//! `x-forwarded-host` and `x-forwarded-proto` added.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::config::{Lifecycle, RawCors, RawJsonEdit, RawRoute, RawService, ServiceKind};
use crate::error::GatewayError;
use crate::health::{Outcome, TargetHealth};

/// One upstream node of a REST service.
#[derive(Debug)]
pub struct Node {
    pub url: String,
    pub weight: u32,
    pub health: Arc<TargetHealth>,
}

/// What goes upstream: the request as routed.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub method: Method,
    /// The upstream path (rewritten).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Upload,
    /// The client's address, for `x-forwarded-for`.
    pub client: Option<std::net::IpAddr>,
}

/// A request body on its way up: read whole (so it can be resent or edited) or streamed through
/// as it arrives (sent once).
#[derive(Debug)]
pub enum Upload {
    Buffered(bytes::Bytes),
    Streaming(Body),
}

/// A REST service ready to proxy.
#[derive(Debug)]
pub struct RestService {
    pub name: String,
    pub nodes: Vec<Node>,
    pub routes: Vec<RawRoute>,
    strategy: crate::config::Strategy,
    retry: crate::config::RetryMethods,
    next: std::sync::atomic::AtomicUsize,
    health_check: Option<crate::config::RawHealthCheck>,
    client: reqwest::Client,
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

impl RestService {
    /// The callable REST services of a config (`published` or `deprecated`).
    pub fn build_all(services: &[RawService]) -> Vec<RestService> {
        services
            .iter()
            .filter(|s| s.kind == ServiceKind::Rest && s.state.callable())
            .filter(|s| s.state != Lifecycle::Retired)
            .map(|s| RestService {
                name: s.name.clone(),
                nodes: s
                    .upstreams
                    .iter()
                    .map(|u| Node {
                        url: u.url.trim_end_matches('/').to_owned(),
                        weight: u.weight,
                        health: Arc::default(),
                    })
                    .collect(),
                routes: s.routes.clone(),
                strategy: s.strategy.unwrap_or_default(),
                retry: s.retry.unwrap_or_default(),
                next: std::sync::atomic::AtomicUsize::new(0),
                health_check: s.health_check.clone(),
                client: {
                    let b = reqwest::Client::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .tcp_nodelay(true);
                    let b = if s.http2 {
                        b.http2_prior_knowledge()
                    } else {
                        b
                    };
                    b.build().unwrap_or_default()
                },
            })
            .collect()
    }

    /// Starts the service's active probes, if it has any: a task that lives as long as the
    /// service (it stops when a reload drops this version of it).
    pub fn start_probes(self: &Arc<Self>) {
        let Some(hc) = self.health_check.clone() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let every = hc
            .interval
            .as_deref()
            .and_then(|d| crate::config::parse_duration(d).ok())
            .unwrap_or(Duration::from_secs(10));
        let timeout = hc
            .timeout
            .as_deref()
            .and_then(|d| crate::config::parse_duration(d).ok())
            .unwrap_or(Duration::from_secs(2));
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(svc) = weak.upgrade() else { return };
                for node in &svc.nodes {
                    let probe = svc.client.get(format!("{}{}", node.url, hc.path)).send();
                    let ok = matches!(
                        tokio::time::timeout(timeout, probe).await,
                        Ok(Ok(r)) if r.status().is_success()
                    );
                    node.health.record(if ok {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    });
                }
            }
        });
    }

    /// The route for a path (under the service), method and host, with the path it rewrites
    /// to upstream.
    pub fn route(
        &self,
        path: &str,
        method: &Method,
        host: Option<&str>,
    ) -> Result<(&RawRoute, String), GatewayError> {
        let mut path_matched = false;
        for r in &self.routes {
            if let Some(want) = &r.host {
                let got = host.map(|h| h.split(':').next().unwrap_or(h));
                if !got.is_some_and(|g| g.eq_ignore_ascii_case(want)) {
                    continue;
                }
            }
            let Some(upstream_path) = matches(r, path) else {
                continue;
            };
            path_matched = true;
            if r.methods.is_empty()
                || r.methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(method.as_str()))
            {
                return Ok((r, upstream_path));
            }
        }
        Err(if path_matched {
            GatewayError::InvalidRequest(format!(
                "service `{}` does not allow {method} on {path}",
                self.name
            ))
        } else {
            GatewayError::RouteNotFound {
                method: method.to_string(),
                path: format!("/s/{}{path}", self.name),
            }
        })
    }

    /// The nodes in weighted random order, available ones first.
    fn order(&self) -> Vec<&Node> {
        use crate::config::Strategy;
        let mut pool: Vec<&Node> = self.nodes.iter().filter(|n| n.weight > 0).collect();
        match self.strategy {
            Strategy::Weighted | Strategy::LowestCost => {
                pool = crate::snapshot::weighted_order(pool, |n| n.weight);
            }
            Strategy::Ordered => {}
            Strategy::RoundRobin => {
                if !pool.is_empty() {
                    let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let len = pool.len();
                    pool.rotate_left(n % len);
                }
            }
            Strategy::LeastInFlight => {
                fastrand::shuffle(&mut pool);
                pool.sort_by_key(|n| n.health.in_flight());
            }
            Strategy::LowestLatency => {
                fastrand::shuffle(&mut pool);
                pool.sort_by(|a, b| a.health.latency_us().total_cmp(&b.health.latency_us()));
            }
        }
        pool.sort_by_key(|n| !n.health.available());
        pool
    }

    /// Whether a failed call with this method moves on to the next node (so its body must be
    /// kept to be sent again).
    pub fn retries(&self, method: &Method) -> bool {
        match self.retry {
            crate::config::RetryMethods::All => true,
            crate::config::RetryMethods::None => false,
            crate::config::RetryMethods::Idempotent => matches!(
                *method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
            ),
        }
    }

    /// Sends the call to the service's nodes; returns the upstream response and attempts made.
    pub async fn forward(
        &self,
        route: &RawRoute,
        out: Outgoing<'_>,
    ) -> (
        Result<Response, GatewayError>,
        Vec<gatehouse_store::Attempt>,
    ) {
        let Outgoing {
            method,
            path: upstream_path,
            query,
            headers,
            body,
            client,
        } = out;
        let mut body = match body {
            Upload::Buffered(b) => Ok(b),
            Upload::Streaming(s) => Err(Some(s)),
        };
        if let (Ok(b), Some(edit)) = (&mut body, &route.request_body) {
            if is_json(headers) {
                *b = edit_json(std::mem::take(b), edit);
            }
        }
        let timeout = route
            .timeout
            .as_deref()
            .and_then(|t| crate::config::parse_duration(t).ok())
            .unwrap_or(Duration::from_secs(60));
        // A streamed body can be sent only once.
        let idempotent = self.retries(&method) && body.is_ok();
        let order = self.order();
        let mut attempts: Vec<gatehouse_store::Attempt> = Vec::new();
        let mut last_err = GatewayError::UpstreamUnreachable {
            provider: self.name.clone(),
            message: "the service has no upstream node".into(),
        };
        for (i, node) in order.iter().enumerate() {
            let last = i + 1 == order.len() || !idempotent;

            let mut url = format!("{}{upstream_path}", node.url);
            if let Some(q) = query {
                url.push('?');
                url.push_str(q);
            }
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                let name = k.as_str();
                // The body may have been edited: reqwest sets its own length.
                // `te: trailers` is how gRPC asks for trailers: it goes through.
                let trailers = name == "te" && v.as_bytes().eq_ignore_ascii_case(b"trailers");
                if name == "authorization"
                    || name == "content-length"
                    || (HOP_BY_HOP.contains(&name) && !trailers)
                {
                    continue;
                }
                if route
                    .remove_headers
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                let renamed = route
                    .rename_headers
                    .iter()
                    .find(|(from, _)| from.eq_ignore_ascii_case(name))
                    .and_then(|(_, to)| HeaderName::from_bytes(to.as_bytes()).ok());
                h.append(renamed.unwrap_or_else(|| k.clone()), v.clone());
            }
            for (k, v) in &route.add_headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    h.insert(k, v);
                }
            }
            if let Some(ip) = client {
                let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                    Some(prior) => format!("{prior}, {ip}"),
                    None => ip.to_string(),
                };
                if let Ok(v) = HeaderValue::from_str(&chain) {
                    h.insert("x-forwarded-for", v);
                }
            }
            if let Some(host) = headers.get(http::header::HOST) {
                h.insert("x-forwarded-host", host.clone());
            }
            h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
            let send = self
                .client
                .request(method.clone(), &url)
                .headers(h)
                .body(match &mut body {
                    Ok(b) => reqwest::Body::from(b.clone()),
                    Err(s) => s
                        .take()
                        .map(|s| reqwest::Body::wrap_stream(s.into_data_stream()))
                        .unwrap_or_else(|| reqwest::Body::from(bytes::Bytes::new())),
                })
                .send();
            let flight = Arc::clone(&node.health).begin();
            let sent_at = std::time::Instant::now();
            let sent = match tokio::time::timeout(timeout, send).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no response within {timeout:?}")),
            };
            match sent {
                Err(e) => {
                    node.health.record(Outcome::Failure);
                    attempts.push(gatehouse_store::Attempt {
                        provider: node.url.clone(),
                        model: upstream_path.to_owned(),
                        outcome: "unreachable".into(),
                    });
                    last_err = GatewayError::UpstreamUnreachable {
                        provider: format!("{} ({})", self.name, node.url),
                        message: e,
                    };
                    if !last {
                        continue;
                    }
                    return (Err(last_err), attempts);
                }
                Ok(resp) => {
                    drop(flight);
                    node.health.observe_latency(sent_at.elapsed());
                    let status = resp.status().as_u16();
                    // Like outlier detection elsewhere, any 5xx counts against the node; only
                    // 502-504 (the node, not the application, failing) are retried.
                    node.health.record(match status {
                        500..=599 => Outcome::Failure,
                        _ => Outcome::Success,
                    });
                    attempts.push(gatehouse_store::Attempt {
                        provider: node.url.clone(),
                        model: upstream_path.to_owned(),
                        outcome: status.to_string(),
                    });
                    if matches!(status, 502..=504) && !last {
                        continue;
                    }
                    let out = match &route.response_body {
                        Some(edit) if is_json(resp.headers()) => relay_edited(resp, edit).await,
                        _ => relay(resp),
                    };
                    return (Ok(out), attempts);
                }
            }
        }
        (Err(last_err), attempts)
    }
}

/// The upstream path for `path` if `route` matches it: the route's prefix (with `{name}`
/// segments matching any one segment) replaced by its `rewrite` (with `{name}` filled in).
fn matches(route: &RawRoute, path: &str) -> Option<String> {
    let want: Vec<&str> = route.path.split('/').filter(|s| !s.is_empty()).collect();
    let got: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if got.len() < want.len() || (route.exact && got.len() != want.len()) {
        return None;
    }
    let mut captures = Vec::new();
    for (w, g) in want.iter().zip(&got) {
        match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(name) => captures.push((name, *g)),
            None if w == g => {}
            None => return None,
        }
    }
    let rest: String = got[want.len()..].iter().map(|s| format!("/{s}")).collect();
    let head = match &route.rewrite {
        Some(r) => {
            let mut r = r.trim_end_matches('/').to_owned();
            for (name, value) in &captures {
                r = r.replace(&format!("{{{name}}}"), value);
            }
            r
        }
        None => got[..want.len()].iter().map(|s| format!("/{s}")).collect(),
    };
    let out = format!("{head}{rest}");
    Some(if out.is_empty() { "/".to_owned() } else { out })
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

/// Applies an edit to a JSON object body; anything else passes unchanged.
fn edit_json(body: bytes::Bytes, edit: &RawJsonEdit) -> bytes::Bytes {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(&body) else {
        return body;
    };
    for k in &edit.remove {
        map.remove(k);
    }
    for (from, to) in &edit.rename {
        if let Some(v) = map.remove(from) {
            map.insert(to.clone(), v);
        }
    }
    for (k, v) in &edit.add {
        map.insert(k.clone(), v.clone());
    }
    serde_json::to_vec(&map)
        .map(bytes::Bytes::from)
        .unwrap_or(body)
}

/// The upstream response with its JSON body edited (read whole, up to 32 MiB).
async fn relay_edited(resp: reqwest::Response, edit: &RawJsonEdit) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = end_to_end(resp.headers());
    let body = match resp.bytes().await {
        Ok(b) if b.len() <= 32 << 20 => edit_json(b, edit),
        Ok(b) => b,
        Err(e) => {
            return GatewayError::UpstreamBroken {
                provider: "rest service".into(),
                message: e.to_string(),
            }
            .into_response_inner()
        }
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// Whether a request asks to switch protocols (WebSocket and other `Upgrade`s).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get(http::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"))
}

impl RestService {
    /// Passes a protocol upgrade (a WebSocket) through to the first available node: the
    /// upstream's `101 Switching Protocols` goes back to the client, and from then on bytes are
    /// copied both ways until either side closes. Not retried (a handshake is not idempotent).
    pub async fn upgrade(
        &self,
        out: Outgoing<'_>,
        on_client: hyper::upgrade::OnUpgrade,
    ) -> Result<Response, GatewayError> {
        let unreachable = |message: String| GatewayError::UpstreamUnreachable {
            provider: self.name.clone(),
            message,
        };
        let node = self
            .order()
            .into_iter()
            .next()
            .ok_or_else(|| unreachable("the service has no upstream node".into()))?;
        let url = url::Url::parse(&node.url).map_err(|e| unreachable(e.to_string()))?;
        if url.scheme() != "http" {
            return Err(unreachable(format!(
                "upgrades go to http:// nodes only, not {}",
                node.url
            )));
        }
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let tcp = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| unreachable("connect timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upgraded upstream connection ended");
            }
        });
        let mut target = format!("{}{}", url.path().trim_end_matches('/'), out.path);
        if let Some(q) = out.query {
            target.push('?');
            target.push_str(q);
        }
        let mut req = http::Request::builder().method(out.method).uri(target);
        for (k, v) in out.headers {
            // The upgrade's own headers stay; the client's key and its Host do not.
            if k == http::header::AUTHORIZATION || k == http::header::HOST {
                continue;
            }
            req = req.header(k, v);
        }
        req = req.header(http::header::HOST, format!("{host}:{port}"));
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| GatewayError::InvalidRequest(e.to_string()))?;
        let mut resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = status;
        *answer.headers_mut() = resp.headers().clone();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            node.health.record(Outcome::Failure);
            return Ok(answer);
        }
        node.health.record(Outcome::Success);
        let on_upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, upstream) = match tokio::join!(on_client, on_upstream) {
                (Ok(c), Ok(u)) => (c, u),
                (c, u) => {
                    tracing::debug!(
                        client = c.is_ok(),
                        upstream = u.is_ok(),
                        "upgrade did not complete"
                    );
                    return;
                }
            };
            let mut client = hyper_util::rt::TokioIo::new(client);
            let mut upstream = hyper_util::rt::TokioIo::new(upstream);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        Ok(answer)
    }
}

/// Whether a client address may use a route: not in `deny`, and in `allow` when it has entries.
/// An unknown address passes only routes without lists.
pub fn ip_allowed(route: &RawRoute, ip: Option<std::net::IpAddr>) -> bool {
    if route.allow.is_empty() && route.deny.is_empty() {
        return true;
    }
    let Some(ip) = ip else { return false };
    let hit = |list: &[String]| {
        list.iter().any(|c| match c.parse::<ipnet::IpNet>() {
            Ok(net) => net.contains(&ip),
            Err(_) => c.parse::<std::net::IpAddr>().is_ok_and(|a| a == ip),
        })
    };
    !hit(&route.deny) && (route.allow.is_empty() || hit(&route.allow))
}

/// CORS: the preflight answer for a route, if the request is one it allows.
pub fn preflight(cors: &RawCors, headers: &HeaderMap) -> Option<Response> {
    let origin = allowed_origin(cors, headers)?;
    headers.get("access-control-request-method")?;
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", origin);
    let methods = if cors.methods.is_empty() {
        "GET, POST, PUT, PATCH, DELETE, OPTIONS".to_owned()
    } else {
        cors.methods.join(", ")
    };
    if let Ok(v) = HeaderValue::from_str(&methods) {
        h.insert("access-control-allow-methods", v);
    }
    let allow_headers = if cors.headers.is_empty() {
        "authorization, content-type".to_owned()
    } else {
        cors.headers.join(", ")
    };
    if let Ok(v) = HeaderValue::from_str(&allow_headers) {
        h.insert("access-control-allow-headers", v);
    }
    h.insert(
        "access-control-max-age",
        HeaderValue::from(cors.max_age.unwrap_or(600)),
    );
    h.insert("vary", HeaderValue::from_static("origin"));
    Some(r)
}

/// The `Access-Control-Allow-Origin` value for a request's origin, if the route allows it.
pub fn allowed_origin(cors: &RawCors, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(http::header::ORIGIN)?;
    let o = origin.to_str().ok()?;
    cors.origins
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
        .then(|| origin.clone())
}

/// The upstream response, its body streamed frame by frame (trailers included, as gRPC needs),
/// hop-by-hop headers dropped.
fn relay(resp: reqwest::Response) -> Response {
    let resp: http::Response<reqwest::Body> = resp.into();
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    *out.headers_mut() = end_to_end(&parts.headers);
    out
}

/// An upstream response's headers as the client gets them: without the hop-by-hop ones and
/// without `content-length` (the body is re-framed on the way out).
fn end_to_end(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(upstream.len());
    for (k, v) in upstream {
        if !HOP_BY_HOP.contains(&k.as_str()) && k != http::header::CONTENT_LENGTH {
            headers.append(k.clone(), v.clone());
        }
    }
    headers
}
