//! The request pipeline, top to bottom: one call from authentication to the last byte.
//!
//! `run` is the whole story of a call; each step is a plain function below it, in the order it
//! runs. Stages that later issues add (guardrails, caching, retries and fallbacks, call records)
//! slot into `run` between the steps named in DESIGN.md.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gatehouse_llm::convert::openai::{from_anthropic, from_gemini};
use gatehouse_llm::convert::{self, ResponseContext};
use gatehouse_llm::types::{anthropic, gemini, openai};
use gatehouse_llm::{tokens, Dialect};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::IgnoredAny;
use tokio::time::Instant;

use crate::adaptive::{Permit, Shed};
use crate::call::{Call, Envelope, RequestId, Surface};
use crate::error::GatewayError;
use crate::health::{self, InFlight};
use crate::limits::{self, Admission, CallScope, Tokens};
use crate::providers::{self, Op};
use crate::record::Draft;
use crate::rest;
use crate::snapshot::{Plan, Principal, Snapshot, Target};
use crate::stream::{self, Translator};

/// Runs one call through the pipeline.
pub async fn run(
    snap: &Snapshot,
    id: RequestId,
    surface: Surface,
    headers: HeaderMap,
    body: Body,
    client: Option<std::net::IpAddr>,
) -> Result<Response, GatewayError> {
    // 1. authenticate: the key names the caller, before a byte of the body is read. A refused
    //    key is counted (metrics), not recorded: it names no one to record it for.
    let started = std::time::Instant::now();
    let principal = match authenticate(snap, &headers) {
        Ok(p) => p,
        Err(e) => return refused(snap, surface.as_str(), e, started),
    };
    // The call's record, filled in as the call goes and sent at the end (step 10).
    let mut draft = Some(Draft::new(
        &snap.traffic,
        &id.0,
        &principal,
        surface.as_str(),
        &headers,
        client,
    ));
    let outcome: Result<Response, GatewayError> = async {
    // 2. read the body, refusing it as soon as it passes `server.max_body`.
    let call = Call::read(id, surface, headers, body, snap.max_body).await?;
    // 3. read the envelope: the model and the stream flag, without building the rest of the body.
    let envelope = Envelope::parse(&call.body)?;
    if let Some(d) = &mut draft {
        d.rec.model_asked = envelope.model.clone();
        d.rec.stream = envelope.stream;
        if d.rec.end_user.is_none() {
            d.rec.end_user = envelope.user.clone();
        }
    }
    // 4. authorise: the key's scopes and its app's subscriptions must cover the model.
    let service = authorise(snap, &principal, &envelope.model)?;
    if let Some(d) = &mut draft {
        d.capture_from(&snap.capture, service.as_deref());
        d.request_body(&call.body);
    }
    // 5. plan the route: a logical model's targets tier by tier, then its fallbacks' (or one
    //    `provider/model` target).
    let plan = plan_route(snap, &envelope.model, &call.headers)?;
    let first = &plan.candidates[0];
    tracing::debug!(key = %principal.key_name, model = %envelope.model, provider = %first.upstream.cfg.name, "routed");
    // 6. admit: every limit that applies, all or none; prompt, output and cost reserved. From
    //    here on every answer carries the rate-limit headers, and the admission is settled.
    let mut admission = admit(
        snap,
        &principal,
        &call,
        &envelope,
        service.as_deref(),
        first,
    )
    .await?;
    let mut rate = HeaderMap::new();
    if let Some(a) = &admission {
        a.headers(&mut rate);
    }
    let mut attempts = 0u32;
    let result = async {
        // Ejected and cooling targets are passed over while another is available; when none
        // is, every target is tried anyway.
        // Targets whose context window cannot hold the prompt are passed over too (the prompt
        // is counted only when some window is smaller than the body).
        let prompt = prompt_if_tight(&call, &envelope, &plan.candidates);
        // …and targets the catalog says lack what the request uses (tools, images, JSON).
        let needs = if plan.candidates.len() > 1 {
            needs_of(&call.body)
        } else {
            Vec::new()
        };
        let fits = |t: &&Target| {
            let window = match (prompt, t.context_window) {
                (Some(p), Some(w)) => u64::from(w) > p,
                _ => true,
            };
            let able = t
                .capabilities
                .as_ref()
                .is_none_or(|caps| needs.iter().all(|n| caps.contains(n)));
            window && able
        };
        let fitting: Vec<&Target> = plan.candidates.iter().filter(fits).collect();
        let fitting = if fitting.is_empty() {
            plan.candidates.iter().collect()
        } else {
            fitting
        };
        let any_available = fitting.iter().any(|t| t.health.available());
        let order: Vec<&Target> = fitting
            .into_iter()
            .filter(|t| !any_available || t.health.available())
            .take(plan.attempts as usize)
            .collect();
        // After a refusal, the next target must differ: a larger window, another provider.
        let mut need_window: Option<u32> = None;
        let mut avoid_provider: Option<&str> = None;
        for (i, target) in order.iter().copied().enumerate() {
            let last = i + 1 == order.len();
            if any_available && !target.health.admit() && !last {
                // Another call took the half-open probe first.
                continue;
            }
            if !last
                && (need_window.is_some_and(|w| target.context_window.is_some_and(|t| t <= w))
                    || avoid_provider == Some(target.upstream.cfg.name.as_str()))
            {
                continue;
            }
            attempts += 1;
            if attempts > 1 {
                tokio::time::sleep(backoff(plan.backoff, attempts)).await;
            }
            // 7. translate the request into this target's dialect, or pass it through.
            let mut outbound = translate_request(snap, &call, &envelope, target)
                .inspect_err(|_| release(&mut admission))?;
            // 8. dispatch: wait for a slot if the provider's concurrency is adaptive (or be
            //    shed), send upstream and wait for its response headers. Connection failures,
            //    timeouts, 429 and 5xx move on to the next candidate while attempts remain;
            //    nothing has reached the client yet, so a retry is invisible to it.
            let mut permit = match &target.upstream.adaptive {
                None => None,
                Some(a) => match a.acquire(principal.priority).await {
                    Ok(p) => Some(p),
                    Err(shed) => {
                        snap.traffic.metrics.shed(&target.upstream.cfg.name);
                        let e = GatewayError::Overloaded {
                            provider: target.upstream.cfg.name.clone(),
                            why: match shed {
                                Shed::QueueFull => "its queue is full".into(),
                                Shed::Waited(d) => format!("no slot freed within {d:?}"),
                            },
                        };
                        if let Some(d) = &mut draft {
                            d.attempt(&target.upstream.cfg.name, &target.model, "shed");
                        }
                        if !last {
                            tracing::info!(error = %e, attempt = attempts, "trying the next target");
                            continue;
                        }
                        release(&mut admission);
                        return Err(e);
                    }
                },
            };
            let deadline = Instant::now() + target.upstream.cfg.timeouts.total;
            let flight = target.health.begin();
            let sent_at = Instant::now();
            let body = std::mem::take(&mut outbound.body);
            // A key the provider refuses (401/403) or rate-limits (429) is set aside and the
            // call resent at once with the pool's next usable key, at most once per key.
            let keys = &target.upstream.keys;
            let mut resent = 0;
            let sent = loop {
                let key = keys.pick();
                let resp = match providers::request(
                    &target.upstream,
                    (outbound.op, &target.model),
                    body.clone(),
                    (&call.id.0, key.map(|k| k.1)),
                    &outbound.forward,
                ) {
                    Ok(mut req) => {
                        if let Some(tp) = draft.as_ref().and_then(Draft::traceparent) {
                            req = req.header("traceparent", tp);
                        }
                        target.upstream.send(req).await
                    }
                    // No credentials to sign with: as if the provider could not be reached.
                    Err(e) => Err(e),
                };
                if let (Ok(r), Some((index, _))) = (&resp, key) {
                    let status = r.status().as_u16();
                    let name = &target.upstream.cfg.name;
                    if keys.report(name, index, status, retry_after(r.headers()))
                        && resent + 1 < keys.len()
                        && keys.another_usable(index)
                    {
                        resent += 1;
                        tracing::info!(provider = %name, status, "the provider refused the key; resending with the next one");
                        if let Some(d) = &mut draft {
                            d.attempt(name, &target.model, format!("key_{status}"));
                        }
                        continue;
                    }
                }
                break resp;
            };
            let upstream = match sent {
                Ok(r) => r,
                Err(e) => {
                    target.health.record(health::Outcome::Failure);
                    if let Some(d) = &mut draft {
                        d.upstream_time(sent_at.elapsed());
                        let what = e.code().unwrap_or_else(|| "failed".into());
                        d.attempt(&target.upstream.cfg.name, &target.model, what);
                    }
                    if let Some(p) = &mut permit {
                        p.report_overloaded();
                    }
                    let timed_out = matches!(e, GatewayError::UpstreamTimeout { .. });
                    if timed_out {
                        // The model may have read the prompt before it timed out: charge it.
                        if let Some(a) = &mut admission {
                            a.charge_attempt();
                        }
                    }
                    if retryable(&e, plan.retry_on) && !last {
                        tracing::info!(error = %e, attempt = attempts, "trying the next target");
                        continue;
                    }
                    if !timed_out {
                        release(&mut admission);
                    }
                    return Err(e);
                }
            };
            let status = upstream.status().as_u16();
            target.health.observe_latency(sent_at.elapsed());
            target.health.record(match status {
                429 => health::Outcome::RateLimited(retry_after(upstream.headers())),
                500..=599 => health::Outcome::Failure,
                _ => health::Outcome::Success,
            });
            if let Some(p) = &mut permit {
                match status {
                    429 | 503 | 529 => p.report_overloaded(),
                    _ => p.report_ok(),
                }
            }
            if let Some(d) = &mut draft {
                d.upstream_time(sent_at.elapsed());
                let outcome = if (200..300).contains(&status) {
                    "ok".to_owned()
                } else {
                    status.to_string()
                };
                d.attempt(&target.upstream.cfg.name, &target.model, outcome);
                d.rec.provider = Some(target.upstream.cfg.name.clone());
                d.rec.model_served = Some(target.model.clone());
                d.provider_kind = Some(target.upstream.cfg.kind.semconv_name());
                d.price = snap
                    .catalog
                    .lookup(target.upstream.cfg.kind.catalog_family(), &target.model)
                    .map(|m| (m.input, m.output, m.cached_input.unwrap_or(m.input)));
            }
            if !(200..300).contains(&status) {
                let retry_after = upstream.headers().get(RETRY_AFTER).cloned();
                let reading = Instant::now();
                let body = target.upstream.read_body(upstream, deadline).await;
                if let Some(d) = &mut draft {
                    d.upstream_time(reading.elapsed());
                }
                let body = body?;
                let err = upstream_error(target, &outbound.translation, status, &body, retry_after);
                let code = match &err {
                    GatewayError::Upstream { body, .. } => body.error.code.clone(),
                    _ => None,
                };
                let refusal = match code.as_deref() {
                    Some("context_length_exceeded") => {
                        need_window = Some(target.context_window.unwrap_or(0));
                        true
                    }
                    Some("content_filter" | "content_policy_violation") => {
                        avoid_provider = Some(&target.upstream.cfg.name);
                        true
                    }
                    _ => false,
                };
                let overloaded = match status {
                    429 => plan.retry_on.rate_limited,
                    500 | 502 | 503 | 504 | 529 => plan.retry_on.server_error,
                    _ => false,
                };
                if (overloaded || refusal) && !last {
                    tracing::info!(provider = %target.upstream.cfg.name, status, ?code, attempt = attempts, "trying the next target");
                    continue;
                }
                // Providers do not bill refused calls.
                release(&mut admission);
                return Err(err);
            }
            // 9. respond: upstream errors in the client's shape, bodies and streams translated
            //    back; the admission settles with the usage the answer reports (streams: when
            //    they end).
            let response = respond(
                target,
                outbound,
                upstream,
                deadline,
                admission.take(),
                (permit, flight),
                &mut draft,
            )
            .await;
            return response;
        }
        Err(GatewayError::ModelNotFound(format!(
            "the model `{}` has no target to try",
            envelope.model
        )))
    }
    .await;
    let mut response = result.unwrap_or_else(|e| e.respond(surface.dialect(), &call.id.0));
    response.headers_mut().extend(rate);
    if let Ok(v) = HeaderValue::from_str(&attempts.to_string()) {
        response.headers_mut().insert("x-gatehouse-attempts", v);
    }
    Ok(response)
    }
    .await;
    observe(snap, surface.as_str(), &outcome, started);
    // 10. record: one record per call to the call log, which never makes the call wait (a
    //     stream's record went with its body and is sent when the stream ends).
    if let Some(d) = draft {
        d.finish_with(&outcome);
    }
    outcome
}

/// The prompt's tokens, when some candidate's context window is smaller than the body (a
/// token is at least a byte, so a window as large as the body always fits).
fn prompt_if_tight(call: &Call, envelope: &Envelope, candidates: &[Target]) -> Option<u64> {
    let tight = candidates.iter().any(|t| {
        t.context_window
            .is_some_and(|w| (w as usize) < call.body.len())
    });
    if !tight {
        return None;
    }
    match call.surface {
        Surface::Chat => serde_json::from_slice::<openai::ChatRequest>(&call.body)
            .ok()
            .map(|r| tokens::count_chat(&r).0),
        Surface::Messages => messages_as_chat(&call.body)
            .ok()
            .map(|r| tokens::count_chat(&r).0),
        Surface::Responses => responses_as_chat(&call.body)
            .ok()
            .map(|r| tokens::count_chat(&r).0),
        _ => Some(tokens::count_text(&envelope.model, &String::from_utf8_lossy(&call.body)).0),
    }
}

/// A `retry-after` in seconds (default 1 s).
fn retry_after(h: &HeaderMap) -> std::time::Duration {
    let secs = h
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    std::time::Duration::from_secs(secs)
}

/// Counts a finished call in the metrics (to its response headers).
fn observe(
    snap: &Snapshot,
    surface: &str,
    outcome: &Result<Response, GatewayError>,
    started: std::time::Instant,
) {
    let header = |r: &Response, name: &str| -> String {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let (status, model, provider) = match outcome {
        Ok(r) => (
            r.status().as_u16(),
            header(r, "x-gatehouse-model"),
            header(r, "x-gatehouse-provider"),
        ),
        Err(e) => (e.status(), "-".into(), "-".into()),
    };
    snap.traffic
        .metrics
        .observe(surface, (&model, &provider), status, started.elapsed());
}

/// A call refused before it had a caller: counted, and answered.
fn refused(
    snap: &Snapshot,
    surface: &str,
    e: GatewayError,
    started: std::time::Instant,
) -> Result<Response, GatewayError> {
    let outcome = Err(e);
    observe(snap, surface, &outcome, started);
    outcome
}

/// Errors worth another target: the provider could not be reached or did not answer in time.
fn retryable(e: &GatewayError, on: crate::config::RetryOn) -> bool {
    match e {
        GatewayError::UpstreamUnreachable { .. } | GatewayError::UpstreamBroken { .. } => {
            on.connect
        }
        GatewayError::UpstreamTimeout { .. } => on.timeout,
        _ => false,
    }
}

/// What a request uses that not every model has: tools, images, structured output. A cheap
/// look at the bytes: a false positive only reorders candidates (all are tried when none fit).
fn needs_of(body: &[u8]) -> Vec<gatehouse_llm::catalog::Capability> {
    use gatehouse_llm::catalog::Capability;
    let has = |needle: &[u8]| memchr::memmem::find(body, needle).is_some();
    let mut out = Vec::new();
    if has(b"\"tools\"") {
        out.push(Capability::Tools);
    }
    if has(b"\"image_url\"") || has(b"\"image\"") {
        out.push(Capability::Vision);
    }
    if has(b"\"response_format\"") {
        out.push(Capability::Json);
    }
    out
}

/// The wait before attempt `n` (2, 3, …): `base`, doubling, with ±50 % jitter.
fn backoff(base: std::time::Duration, n: u32) -> std::time::Duration {
    let exp = base.saturating_mul(1 << (n.saturating_sub(2)).min(6));
    exp.mul_f64(0.5 + fastrand::f64())
}

/// Settles an admission with nothing used: the call never reached a model.
fn release(admission: &mut Option<Admission>) {
    if let Some(a) = admission.take() {
        a.settle(Tokens::default());
    }
}

/// Admits the call against the limits that apply to it (none: no admission).
async fn admit(
    snap: &Snapshot,
    principal: &Principal,
    call: &Call,
    envelope: &Envelope,
    service: Option<&str>,
    target: &Target,
) -> Result<Option<Admission>, GatewayError> {
    if snap.policies.is_empty() {
        return Ok(None);
    }
    let scope = CallScope {
        principal,
        model: &envelope.model,
        service,
    };
    let checks = snap.policies.checks(&scope);
    if checks.is_empty() {
        return Ok(None);
    }
    let (prompt_tokens, max_output) = if limits::needs_tokens(&checks) {
        prompt_of(call, &target.model)?
    } else {
        (0, None)
    };
    let up = &target.upstream.cfg;
    let ask = limits::Ask {
        checks,
        prompt_tokens,
        max_output,
        price: snap.catalog.lookup(up.kind.catalog_family(), &target.model),
        lease_ttl: up.timeouts.total + std::time::Duration::from_secs(60),
        request_id: &call.id.0,
    };
    limits::admit(&snap.traffic, &snap.policies, ask)
        .await
        .map(Some)
}

/// Admits one call to a REST service under the policies that apply to it (requests and
/// concurrency; a service call has no tokens or price). `None` when no policy applies.
async fn admit_service(
    snap: &Snapshot,
    principal: &Principal,
    service: &str,
    id: &RequestId,
) -> Result<Option<Admission>, GatewayError> {
    let scope = CallScope {
        principal,
        model: "",
        service: Some(service),
    };
    let checks = snap.policies.checks(&scope);
    if checks.is_empty() {
        return Ok(None);
    }
    let ask = limits::Ask {
        checks,
        prompt_tokens: 0,
        max_output: Some(0),
        price: None,
        lease_ttl: std::time::Duration::from_secs(660),
        request_id: &id.0,
    };
    limits::admit(&snap.traffic, &snap.policies, ask)
        .await
        .map(Some)
}

/// The prompt's tokens and the output cap the client set, by surface.
fn prompt_of(call: &Call, model: &str) -> Result<(u64, Option<u32>), GatewayError> {
    Ok(match call.surface {
        Surface::Chat => {
            let req: openai::ChatRequest = parse_typed(&call.body)?;
            (tokens::count_chat(&req).0, req.output_cap())
        }
        Surface::Messages => {
            let req = messages_as_chat(&call.body)?;
            (tokens::count_chat(&req).0, req.max_tokens)
        }
        Surface::Responses => {
            let req = responses_as_chat(&call.body)?;
            (tokens::count_chat(&req).0, req.max_tokens)
        }
        Surface::Embeddings => {
            let req: openai::EmbeddingsRequest = parse_typed(&call.body)?;
            let n = match &req.input {
                openai::EmbeddingInput::One(t) => tokens::count_text(model, t).0,
                openai::EmbeddingInput::Many(v) => {
                    v.iter().map(|t| tokens::count_text(model, t).0).sum()
                }
                _ => 0,
            };
            (n, Some(0))
        }
        Surface::Completions => {
            #[derive(serde::Deserialize)]
            struct Legacy {
                #[serde(default)]
                prompt: serde_json::Value,
                max_tokens: Option<u32>,
            }
            let req: Legacy = parse_typed(&call.body)?;
            let text = match &req.prompt {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            (tokens::count_text(model, &text).0, req.max_tokens)
        }
    })
}

/// An Anthropic Messages body as the canonical chat request (to count its tokens).
fn messages_as_chat(body: &[u8]) -> Result<openai::ChatRequest, GatewayError> {
    let req: anthropic::Request = parse_typed(body)?;
    let model = req.model.clone();
    convert::openai::from_anthropic::request(req)
        .map(|(r, _)| r)
        .map_err(|e| GatewayError::from_llm(e, &model, "-"))
}

/// An OpenAI Responses body as the canonical chat request (to count its tokens).
fn responses_as_chat(body: &[u8]) -> Result<openai::ChatRequest, GatewayError> {
    let req: gatehouse_llm::types::responses::Request = parse_typed(body)?;
    let model = req.model.clone();
    convert::openai::from_responses::request(req)
        .map(|(r, _)| r)
        .map_err(|e| GatewayError::from_llm(e, &model, "-"))
}

/// `POST /v1/messages/count_tokens`: the tokens a Messages request's prompt holds. An Anthropic
/// upstream is asked (its count is exact); for any other the prompt is counted here, with the
/// target model's tokenizer where Gatehouse has it. Costs nothing, so no limit is charged.
pub async fn count_tokens(
    snap: &Snapshot,
    id: RequestId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let principal = authenticate(snap, &headers)?;
    let call = Call::read(id, Surface::Messages, headers, body, snap.max_body).await?;
    let envelope = Envelope::parse(&call.body)?;
    authorise(snap, &principal, &envelope.model)?;
    let plan = plan_route(snap, &envelope.model, &call.headers)?;
    let target = &plan.candidates[0];
    // A count request has no `max_tokens`; the typed request wants one.
    let mut value: serde_json::Value = parse_typed(&call.body)?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("max_tokens").or_insert(serde_json::json!(1));
    }
    let body = Bytes::from(value.to_string());
    let req = messages_as_chat(&body)?;
    if target.upstream.cfg.kind.dialect() == Dialect::AnthropicMessages {
        let forward: Vec<_> = ANTHROPIC_FORWARDED
            .iter()
            .filter_map(|&name| call.headers.get(name).map(|v| (name, v.clone())))
            .collect();
        let up = &target.upstream;
        let deadline = Instant::now() + up.cfg.timeouts.total;
        let key = up.keys.pick();
        let req = providers::request(
            up,
            (Op::CountTokens, &target.model),
            envelope.with_model(&call.body, &target.model),
            (&call.id.0, key.map(|k| k.1)),
            &forward,
        )?;
        let resp = up.send(req).await?;
        let status = resp.status().as_u16();
        if let Some((index, _)) = key {
            up.keys
                .report(&up.cfg.name, index, status, retry_after(resp.headers()));
        }
        let body = up.read_body(resp, deadline).await?;
        if !(200..300).contains(&status) {
            return Err(upstream_error(
                target,
                &Translation::AnthropicPassThrough,
                status,
                &body,
                None,
            ));
        }
        serde_json::from_slice::<IgnoredAny>(&body).map_err(|e| {
            GatewayError::UpstreamMalformed {
                provider: up.cfg.name.clone(),
                message: e.to_string(),
            }
        })?;
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(r);
    }
    let n = tokens::count_chat(&openai::ChatRequest {
        model: target.model.clone(),
        ..req
    })
    .0;
    let mut r = axum::Json(serde_json::json!({ "input_tokens": n })).into_response();
    if let Ok(v) = HeaderValue::from_str(&target.upstream.cfg.name) {
        r.headers_mut().insert("x-gatehouse-provider", v);
    }
    Ok(r)
}

/// Finds the caller's key by its keyed hash, and checks that it has not expired.
/// The key is read from `Authorization: Bearer`, or from `x-api-key` as Anthropic's clients
/// send it.
pub fn authenticate(snap: &Snapshot, headers: &HeaderMap) -> Result<Principal, GatewayError> {
    let key = match headers.get(http::header::AUTHORIZATION) {
        Some(v) => {
            let value = v.to_str().map_err(|_| GatewayError::InvalidKey)?;
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or(GatewayError::MissingKey)?
                .trim()
        }
        None => headers
            .get("x-api-key")
            .ok_or(GatewayError::MissingKey)?
            .to_str()
            .map_err(|_| GatewayError::InvalidKey)?
            .trim(),
    };
    let principal = snap
        .keys
        .get(&snap.hasher.hash(key))
        .ok_or(GatewayError::InvalidKey)?;
    if principal
        .expires_at
        .is_some_and(|at| at <= gatehouse_store::ids::now_ms())
    {
        return Err(GatewayError::ExpiredKey);
    }
    Ok(principal.clone())
}

/// Refuses the call unless the caller may use the model (see `access`); returns the service it
/// is allowed through, if any.
pub fn authorise(
    snap: &Snapshot,
    principal: &Principal,
    model: &str,
) -> Result<Option<String>, GatewayError> {
    snap.access
        .authorise(principal, model)
        .map_err(|r| GatewayError::Forbidden {
            code: r.code,
            message: r.message,
        })
}

/// Resolves the model name to the targets to try, in order.
pub fn plan_route(snap: &Snapshot, model: &str, headers: &HeaderMap) -> Result<Plan, GatewayError> {
    snap.plan(model, headers).ok_or_else(|| {
        GatewayError::ModelNotFound(format!(
            "the model `{model}` does not exist: use a name from GET /v1/models or `provider/model`"
        ))
    })
}

/// How the response must be handled, decided with the request.
#[derive(Debug)]
enum Translation {
    PassThrough,
    /// An Anthropic client's call to an Anthropic upstream, forwarded as it is.
    AnthropicPassThrough,
    /// A Responses client's call to OpenAI's own Responses API, forwarded as it is.
    ResponsesPassThrough,
    Anthropic(ResponseContext),
    Bedrock(ResponseContext),
    /// The client's body is kept (a reference count, not a copy) to count usage if Gemini sends none.
    Gemini {
        ctx: ResponseContext,
        client_body: Bytes,
    },
    GeminiEmbeddings {
        prompt_tokens: u64,
        base64: bool,
    },
}

/// The upstream request body and what the response side needs to know.
#[derive(Debug)]
pub(crate) struct Outbound {
    op: Op,
    body: Bytes,
    stream: bool,
    translation: Translation,
    /// How the canonical (OpenAI) answer is written for the client.
    egress: Egress,
    /// Client headers the upstream must see (`anthropic-version`, `anthropic-beta`).
    forward: Vec<(&'static str, HeaderValue)>,
    dropped: Vec<String>,
}

/// The client's dialect, when the answer must be rewritten into it.
#[derive(Debug, Clone, PartialEq)]
enum Egress {
    /// The answer is already in the client's dialect.
    Native,
    /// OpenAI's answer, rewritten as Anthropic Messages; the prompt's tokens (counted) go in
    /// a stream's `message_start`.
    Anthropic { prompt_tokens: u64 },
    /// OpenAI's answer, rewritten as an OpenAI Responses object, echoing the request's fields.
    Responses {
        echo: Box<convert::responses::from_openai::Echo>,
        prompt_tokens: u64,
    },
}

/// The Anthropic headers a client sends that an Anthropic upstream must see.
const ANTHROPIC_FORWARDED: [&str; 2] = ["anthropic-version", "anthropic-beta"];

fn translate_request(
    snap: &Snapshot,
    call: &Call,
    envelope: &Envelope,
    target: &Target,
) -> Result<Outbound, GatewayError> {
    let up = &target.upstream.cfg;
    let dialect = up.kind.dialect();
    let llm_err = |e| GatewayError::from_llm(e, &envelope.model, &up.name);
    let unsupported = |feature: &str| GatewayError::Unsupported {
        feature: feature.to_owned(),
        target: dialect.label().to_owned(),
        model: envelope.model.clone(),
    };
    let pass = |op| Outbound {
        op,
        body: envelope.with_model(&call.body, &target.model),
        stream: envelope.stream,
        translation: Translation::PassThrough,
        egress: Egress::Native,
        forward: Vec::new(),
        dropped: Vec::new(),
    };
    match (call.surface, dialect) {
        (Surface::Chat, Dialect::OpenAiChat) => Ok(pass(Op::Chat {
            stream: envelope.stream,
        })),
        (Surface::Completions, Dialect::OpenAiChat) => Ok(pass(Op::Completions)),
        (Surface::Embeddings, Dialect::OpenAiChat) => Ok(pass(Op::Embeddings)),
        (Surface::Chat, _) => {
            let req: openai::ChatRequest = parse_typed(&call.body)?;
            chat_request(snap, req, &call.body, envelope.stream, target).map_err(llm_err)
        }
        (Surface::Messages, Dialect::AnthropicMessages) => {
            let forward = ANTHROPIC_FORWARDED
                .iter()
                .filter_map(|&name| call.headers.get(name).map(|v| (name, v.clone())))
                .collect();
            Ok(Outbound {
                translation: Translation::AnthropicPassThrough,
                forward,
                ..pass(Op::Chat {
                    stream: envelope.stream,
                })
            })
        }
        (Surface::Responses, Dialect::OpenAiChat)
            if target.upstream.cfg.kind == crate::config::ProviderKind::Openai =>
        {
            Ok(Outbound {
                translation: Translation::ResponsesPassThrough,
                ..pass(Op::Responses)
            })
        }
        (Surface::Responses, _) => {
            let req: gatehouse_llm::types::responses::Request = parse_typed(&call.body)?;
            let echo = Box::new(convert::responses::from_openai::Echo::of(&req));
            let (mut req, notes) =
                convert::openai::from_responses::request(req).map_err(llm_err)?;
            adapt_for(&mut req, target, &snap.catalog);
            let prompt_tokens = if envelope.stream {
                tokens::count_chat(&req).0
            } else {
                0
            };
            let canonical = to_bytes(&req);
            let mut out =
                chat_request(snap, req, &canonical, envelope.stream, target).map_err(llm_err)?;
            out.egress = Egress::Responses {
                echo,
                prompt_tokens,
            };
            out.dropped.extend(notes.dropped);
            Ok(out)
        }
        (Surface::Messages, _) => {
            let req: anthropic::Request = parse_typed(&call.body)?;
            let (mut req, notes) =
                convert::openai::from_anthropic::request(req).map_err(llm_err)?;
            adapt_for(&mut req, target, &snap.catalog);
            let prompt_tokens = if envelope.stream {
                tokens::count_chat(&req).0
            } else {
                0
            };
            let canonical = to_bytes(&req);
            let mut out =
                chat_request(snap, req, &canonical, envelope.stream, target).map_err(llm_err)?;
            out.egress = Egress::Anthropic { prompt_tokens };
            out.dropped.extend(notes.dropped);
            Ok(out)
        }
        (Surface::Embeddings, Dialect::Gemini) => {
            let req: openai::EmbeddingsRequest = parse_typed(&call.body)?;
            let base64 = req.encoding_format.as_deref() == Some("base64");
            let prompt_tokens = match &req.input {
                openai::EmbeddingInput::One(t) => tokens::count_text(&target.model, t).0,
                openai::EmbeddingInput::Many(v) => v
                    .iter()
                    .map(|t| tokens::count_text(&target.model, t).0)
                    .sum(),
                _ => 0,
            };
            let body =
                convert::gemini::from_openai::embeddings(req, &target.model).map_err(llm_err)?;
            Ok(Outbound {
                op: Op::Embeddings,
                body: to_bytes(&body),
                stream: false,
                translation: Translation::GeminiEmbeddings {
                    prompt_tokens,
                    base64,
                },
                egress: Egress::Native,
                forward: Vec::new(),
                dropped: Vec::new(),
            })
        }
        (Surface::Embeddings, Dialect::AnthropicMessages | Dialect::BedrockConverse) => {
            Err(unsupported("embeddings"))
        }
        (
            Surface::Completions,
            Dialect::AnthropicMessages | Dialect::Gemini | Dialect::BedrockConverse,
        ) => Err(unsupported(
            "the legacy completions API (use /v1/chat/completions)",
        )),
    }
}

/// Fits a chat request translated from another dialect to an OpenAI-dialect target: OpenAI's
/// own API (and Azure's) wants `max_completion_tokens` and knows no `top_k`, and a model the catalog knows
/// to lack reasoning is not sent `reasoning_effort`.
fn adapt_for(
    req: &mut openai::ChatRequest,
    target: &Target,
    catalog: &gatehouse_llm::catalog::Catalog,
) {
    use crate::config::ProviderKind;
    let kind = target.upstream.cfg.kind;
    if kind.dialect() != Dialect::OpenAiChat {
        return;
    }
    if matches!(kind, ProviderKind::Openai | ProviderKind::AzureOpenai) {
        req.max_completion_tokens = req.max_tokens.take();
        req.extra.remove("top_k");
    }
    let reasoning = catalog
        .lookup(kind.catalog_family(), &target.model)
        .map(|m| {
            m.capabilities
                .contains(&gatehouse_llm::catalog::Capability::Reasoning)
        });
    if reasoning == Some(false) {
        req.reasoning_effort = None;
    }
}

/// A typed chat request in the target's dialect. `client_body` is the request as OpenAI JSON,
/// kept to count the prompt if Gemini reports no usage.
fn chat_request(
    snap: &Snapshot,
    req: openai::ChatRequest,
    client_body: &Bytes,
    stream: bool,
    target: &Target,
) -> Result<Outbound, gatehouse_llm::LlmError> {
    let up = &target.upstream.cfg;
    let op = Op::Chat { stream };
    let outbound = |body, translation, dropped| Outbound {
        op,
        body,
        stream,
        translation,
        egress: Egress::Native,
        forward: Vec::new(),
        dropped,
    };
    match up.kind.dialect() {
        Dialect::OpenAiChat => {
            let req = openai::ChatRequest {
                model: target.model.clone(),
                ..req
            };
            Ok(outbound(
                to_bytes(&req),
                Translation::PassThrough,
                Vec::new(),
            ))
        }
        Dialect::AnthropicMessages => {
            let ctx = response_context(&req, target);
            let max_tokens = snap
                .catalog
                .lookup(up.kind.catalog_family(), &target.model)
                .map(|m| m.max_output_tokens.min(up.default_max_tokens))
                .unwrap_or(up.default_max_tokens);
            let (body, notes) =
                convert::anthropic::from_openai::request(req, &target.model, max_tokens)?;
            let ctx = ResponseContext {
                json_tool: notes.json_tool,
                ..ctx
            };
            Ok(outbound(
                to_bytes(&body),
                Translation::Anthropic(ctx),
                notes.dropped,
            ))
        }
        Dialect::Gemini => {
            let mut ctx = response_context(&req, target);
            // Gemini may send no usage; count the prompt up front only when a stream's client
            // asked for usage (a non-streamed answer without usage is counted when it arrives).
            if stream && ctx.include_usage {
                ctx.prompt_tokens = Some(tokens::count_chat(&req).0);
            }
            let (body, notes) = convert::gemini::from_openai::request(req)?;
            Ok(outbound(
                to_bytes(&body),
                Translation::Gemini {
                    ctx,
                    client_body: client_body.clone(),
                },
                notes.dropped,
            ))
        }
        Dialect::BedrockConverse => {
            let ctx = response_context(&req, target);
            let max_tokens = snap
                .catalog
                .lookup(up.kind.catalog_family(), &target.model)
                .map(|m| m.max_output_tokens.min(up.default_max_tokens))
                .unwrap_or(up.default_max_tokens);
            let (body, notes) =
                convert::bedrock::from_openai::request(req, &target.model, max_tokens)?;
            let ctx = ResponseContext {
                json_tool: notes.json_tool,
                ..ctx
            };
            Ok(outbound(
                to_bytes(&body),
                Translation::Bedrock(ctx),
                notes.dropped,
            ))
        }
    }
}

/// An id for a completion whose upstream gives none (Bedrock).
fn completion_id() -> String {
    format!(
        "chatcmpl-{:016x}{:08x}",
        fastrand::u64(..),
        fastrand::u32(..)
    )
}

fn response_context(req: &openai::ChatRequest, target: &Target) -> ResponseContext {
    ResponseContext {
        model: target.model.clone(),
        created: convert::unix_now(),
        json_tool: None,
        include_usage: req.wants_stream_usage(),
        prompt_tokens: None,
    }
}

/// Parses the whole body into a typed request; errors name the field path.
fn parse_typed<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        GatewayError::InvalidRequest(format!("{path}: {}", e.into_inner()))
    })
}

fn to_bytes<T: serde::Serialize>(v: &T) -> Bytes {
    // Serialising our own typed values (maps with string keys) cannot fail.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

async fn respond(
    target: &Target,
    out: Outbound,
    resp: reqwest::Response,
    deadline: Instant,
    admission: Option<Admission>,
    hold: (Option<Permit>, InFlight),
    draft: &mut Option<Draft>,
) -> Result<Response, GatewayError> {
    let up = &target.upstream;

    let mut response = if out.stream {
        let egress = match (&out.egress, &out.translation) {
            (Egress::Anthropic { prompt_tokens }, _) => stream::Egress::Anthropic(Box::new(
                convert::anthropic::from_openai::Stream::new(&target.model, *prompt_tokens),
            )),
            (
                Egress::Responses {
                    echo,
                    prompt_tokens,
                },
                _,
            ) => stream::Egress::Responses(Box::new(convert::responses::from_openai::Stream::new(
                &target.model,
                convert::unix_now(),
                (**echo).clone(),
                *prompt_tokens,
            ))),
            (Egress::Native, Translation::AnthropicPassThrough) => stream::Egress::AnthropicNative,
            (Egress::Native, Translation::ResponsesPassThrough) => stream::Egress::ResponsesNative,
            (Egress::Native, _) => stream::Egress::OpenAi,
        };
        let translator = match out.translation {
            Translation::PassThrough | Translation::GeminiEmbeddings { .. } => match out.egress {
                Egress::Native => Translator::PassThrough {
                    done: false,
                    dialect: stream::Native::OpenAiChat,
                },
                Egress::Anthropic { .. } | Egress::Responses { .. } => {
                    Translator::OpenAi { done: false }
                }
            },
            Translation::AnthropicPassThrough => Translator::PassThrough {
                done: false,
                dialect: stream::Native::Anthropic,
            },
            Translation::ResponsesPassThrough => Translator::PassThrough {
                done: false,
                dialect: stream::Native::Responses,
            },
            Translation::Anthropic(ctx) => {
                Translator::Anthropic(Box::new(from_anthropic::Stream::new(ctx)))
            }
            Translation::Gemini { ctx, .. } => {
                Translator::Gemini(Box::new(from_gemini::Stream::new(ctx)))
            }
            Translation::Bedrock(ctx) => Translator::Bedrock(Box::new(
                convert::openai::from_bedrock::Stream::new(ctx, &completion_id()),
            )),
        };
        let record = draft.take();
        let meter = (admission.is_some() || record.is_some())
            .then(|| stream::Meter::new(admission, record, &target.model));
        let mut r = Response::new(stream::body(
            resp,
            (translator, egress),
            up,
            deadline,
            meter,
            hold,
        ));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    } else {
        let reading = Instant::now();
        let body = up.read_body(resp, deadline).await;
        if let Some(d) = draft.as_mut() {
            d.upstream_time(reading.elapsed());
        }
        let body = body?;
        let malformed = |e: serde_json::Error| GatewayError::UpstreamMalformed {
            provider: up.cfg.name.clone(),
            message: e.to_string(),
        };
        let body = match out.translation {
            Translation::PassThrough
            | Translation::AnthropicPassThrough
            | Translation::ResponsesPassThrough => {
                serde_json::from_slice::<IgnoredAny>(&body).map_err(malformed)?;
                body
            }
            Translation::Anthropic(ctx) => {
                let parsed: anthropic::Response =
                    serde_json::from_slice(&body).map_err(malformed)?;
                to_bytes(&from_anthropic::response(parsed, &ctx))
            }
            Translation::Gemini {
                mut ctx,
                client_body,
            } => {
                let parsed: gemini::Response = serde_json::from_slice(&body).map_err(malformed)?;
                if parsed.usage_metadata.is_none() {
                    let req: openai::ChatRequest = parse_typed(&client_body)?;
                    ctx.prompt_tokens = Some(tokens::count_chat(&req).0);
                }
                to_bytes(&from_gemini::response(parsed, &ctx))
            }
            Translation::Bedrock(ctx) => {
                let parsed: gatehouse_llm::types::bedrock::Response =
                    serde_json::from_slice(&body).map_err(malformed)?;
                to_bytes(&convert::openai::from_bedrock::response(
                    parsed,
                    &completion_id(),
                    &ctx,
                ))
            }
            Translation::GeminiEmbeddings {
                prompt_tokens,
                base64,
            } => {
                let parsed: gemini::BatchEmbedResponse =
                    serde_json::from_slice(&body).map_err(malformed)?;
                to_bytes(&from_gemini::embeddings(
                    parsed,
                    &target.model,
                    prompt_tokens,
                    base64,
                ))
            }
        };
        let reported = limits::usage_of(&body);
        let body = match &out.egress {
            Egress::Native => body,
            Egress::Anthropic { .. } => {
                let parsed: openai::ChatResponse =
                    serde_json::from_slice(&body).map_err(malformed)?;
                let answer = convert::anthropic::from_openai::response(parsed, &target.model)
                    .map_err(|e| GatewayError::from_llm(e, &target.model, &up.cfg.name))?;
                to_bytes(&answer)
            }
            Egress::Responses { echo, .. } => {
                let parsed: openai::ChatResponse =
                    serde_json::from_slice(&body).map_err(malformed)?;
                to_bytes(&convert::responses::from_openai::response(
                    parsed,
                    &target.model,
                    convert::unix_now(),
                    echo,
                ))
            }
        };
        if let Some(d) = draft.as_mut() {
            if let Some(t) = reported {
                d.tokens(t);
            }
            d.response_body(body.clone());
        }
        if let Some(a) = admission {
            // A body without usage is charged its whole reservation: never less than it used.
            let used = reported.unwrap_or(Tokens {
                input: a.prompt_tokens(),
                cached: 0,
                output: a.reserved_output(),
                reasoning: 0,
            });
            a.settle(used);
        }
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&up.cfg.name) {
        h.insert("x-gatehouse-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&target.model) {
        h.insert("x-gatehouse-model", v);
    }
    if !out.dropped.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&out.dropped.join(",")) {
            h.insert("x-gatehouse-dropped-params", v);
        }
    }
    Ok(response)
}

/// An upstream error status, with its message translated into OpenAI's shape.
fn upstream_error(
    target: &Target,
    translation: &Translation,
    status: u16,
    body: &[u8],
    retry_after: Option<HeaderValue>,
) -> GatewayError {
    let provider = target.upstream.cfg.name.clone();
    let translated = match translation {
        Translation::PassThrough | Translation::ResponsesPassThrough => {
            serde_json::from_slice::<openai::ErrorBody>(body).ok()
        }
        Translation::Anthropic(_) | Translation::AnthropicPassThrough => {
            from_anthropic::error(status, body)
        }
        Translation::Gemini { .. } | Translation::GeminiEmbeddings { .. } => {
            from_gemini::error(status, body)
        }
        Translation::Bedrock(_) => convert::openai::from_bedrock::error(status, body),
    };
    let body = translated.unwrap_or_else(|| {
        tracing::debug!(%provider, status, body = %String::from_utf8_lossy(body), "upstream error body in no known shape");
        let (kind, code) = convert::openai_error_kind(status);
        openai::ErrorBody::new(format!("provider {provider} answered HTTP {status}"), kind, code)
    });
    GatewayError::Upstream {
        provider,
        status,
        body: Box::new(body),
        retry_after,
    }
}

/// Runs one REST call, top to bottom: authenticate, authorise the service, route, read the body,
/// admit, forward to the service's nodes.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one HTTP request, as axum hands them"
)]
pub async fn run_rest(
    snap: &Snapshot,
    id: RequestId,
    service: &str,
    path: &str,
    method: http::Method,
    query: Option<&str>,
    headers: HeaderMap,
    body: Body,
    client: Option<std::net::IpAddr>,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, GatewayError> {
    // 0. CORS preflights carry no key: answered from the route's rules, before authentication.
    if method == http::Method::OPTIONS {
        if let Some(svc) = snap.rest.get(service) {
            let host = headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok());
            let asked = headers
                .get("access-control-request-method")
                .and_then(|m| m.to_str().ok())
                .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok());
            if let Some(asked) = asked {
                if let Ok((route, _)) = svc.route(path, &asked, host) {
                    if let Some(r) = route
                        .cors
                        .as_ref()
                        .and_then(|c| rest::preflight(c, &headers))
                    {
                        return Ok(r);
                    }
                }
            }
        }
    }
    // 1. authenticate: the key names the caller, before a byte of the body is read.
    let started = std::time::Instant::now();
    let principal = match authenticate(snap, &headers) {
        Ok(p) => p,
        Err(e) => return refused(snap, "rest", e, started),
    };
    let mut draft = {
        let mut d = Draft::new(&snap.traffic, &id.0, &principal, "rest", &headers, client);
        d.capture_from(&snap.capture, Some(service));
        d.rec.model_asked = format!("{method} {path}");
        Some(d)
    };
    let outcome: Result<Response, GatewayError> = async {
        // 2. authorise: the key's app must hold an approved subscription to the service.
        snap.access
            .authorise_service(&principal, service)
            .map_err(|r| match r.code {
                "service_not_found" => GatewayError::RouteNotFound {
                    method: method.to_string(),
                    path: format!("/s/{service}{path}"),
                },
                code => GatewayError::Forbidden {
                    code,
                    message: r.message,
                },
            })?;
        let svc = snap
            .rest
            .get(service)
            .ok_or_else(|| GatewayError::RouteNotFound {
                method: method.to_string(),
                path: format!("/s/{service}{path}"),
            })?;
        // 3. route: the first route whose host, prefix and methods fit.
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let (route, upstream_path) = svc.route(path, &method, host)?;
        if !rest::ip_allowed(route, client) {
            return Err(GatewayError::Forbidden {
                code: "address_denied",
                message: format!(
                    "requests from {} may not use this route of service `{service}`",
                    client.map_or("an unknown address".to_owned(), |ip| ip.to_string())
                ),
            });
        }
        // An upgrade (WebSocket) is passed through to one node as it is: no body, no retries,
        //    limits counted at the handshake.
        if let (true, Some(on_upgrade)) = (rest::is_upgrade(&headers), on_upgrade) {
            if let Some(admission) = admit_service(snap, &principal, service, &id).await? {
                admission.settle(Tokens::default());
            }
            let out = rest::Outgoing {
                method,
                path: &upstream_path,
                query,
                headers: &headers,
                body: rest::Upload::Buffered(bytes::Bytes::new()),
                client,
            };
            return svc.upgrade(out, on_upgrade).await;
        }
        // 4. the body: read whole (bounded) when a retry may resend it or a rule edits it,
        //    else streamed through as it arrives (its declared length still bounded).
        let limit = route
            .max_body
            .as_deref()
            .and_then(|b| crate::config::parse_size(b).ok())
            .unwrap_or(snap.max_body);
        if let Some(d) = &mut draft {
            d.rec.route = Some(route.path.clone());
        }
        let body = if svc.retries(&method) || route.request_body.is_some() {
            let bytes = crate::call::read_body(&headers, body, limit).await?;
            if let Some(d) = &mut draft {
                d.request_body(&bytes);
            }
            rest::Upload::Buffered(bytes)
        } else {
            let declared = headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(GatewayError::PayloadTooLarge { limit });
            }
            rest::Upload::Streaming(body)
        };
        // 5. admit: the policies that apply to the service (requests and concurrency).
        let admission = admit_service(snap, &principal, service, &id).await?;
        let mut rate = HeaderMap::new();
        if let Some(a) = &admission {
            a.headers(&mut rate);
        }
        // 6. forward: the service's nodes in weighted order; idempotent methods fail over.
        let mut headers = headers;
        if let Some(tp) = draft.as_ref().and_then(Draft::traceparent) {
            if let Ok(v) = HeaderValue::from_str(&tp) {
                headers.insert("traceparent", v);
            }
        }
        let forwarding = Instant::now();
        let (result, attempts) = svc
            .forward(
                route,
                rest::Outgoing {
                    method,
                    path: &upstream_path,
                    query,
                    headers: &headers,
                    body,
                    client,
                },
            )
            .await;
        if let Some(a) = admission {
            a.settle(Tokens::default());
        }
        let mut response = result.unwrap_or_else(IntoResponse::into_response);
        response.headers_mut().extend(rate);
        if let Ok(v) = HeaderValue::from_str(&attempts.len().to_string()) {
            response.headers_mut().insert("x-gatehouse-attempts", v);
        }
        if let Some(origin) = route
            .cors
            .as_ref()
            .and_then(|c| rest::allowed_origin(c, &headers))
        {
            response
                .headers_mut()
                .insert("access-control-allow-origin", origin);
            response
                .headers_mut()
                .insert("vary", HeaderValue::from_static("origin"));
        }
        if let Some(d) = &mut draft {
            d.upstream_time(forwarding.elapsed());
            d.rec.provider = Some(service.to_owned());
            d.rec.attempts = attempts.clone();
        }
        Ok(response)
    }
    .await;
    observe(snap, "rest", &outcome, started);
    // 7. record: the REST call's record, each node attempt with its outcome (sent when the
    //    response body ends, if its policy keeps that body).
    match (draft, outcome) {
        (Some(d), Ok(resp)) if d.keeps_response_body(resp.status()) => Ok(d.finish_after(resp)),
        (Some(d), outcome) => {
            d.finish_with(&outcome);
            outcome
        }
        (None, outcome) => outcome,
    }
}
