//! HTTP handlers: extract, run the pipeline, respond. Nothing else happens here.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::call::{RequestId, Surface};
use crate::error::GatewayError;
use crate::snapshot::{Shared, Snapshot};
use crate::{models, pipeline};

type Snap = State<Shared>;

/// The client's address (the TCP peer), when the listener knows it.
pub(crate) struct ClientIp(Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

async fn proxy(
    snap: &Snapshot,
    id: RequestId,
    surface: Surface,
    (headers, client): (HeaderMap, ClientIp),
    body: Body,
) -> Response {
    // Only Anthropic's error shape carries the request id (OpenAI's hot path skips the copy).
    let request_id = (surface == Surface::Messages).then(|| id.0.clone());
    pipeline::run(snap, id, surface, headers, body, client.0)
        .await
        .unwrap_or_else(|e| e.respond(surface.dialect(), request_id.as_deref().unwrap_or("")))
}

pub(crate) async fn chat(
    State(snap): Snap,
    Extension(id): Extension<RequestId>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(
        &snap.load_full(),
        id,
        Surface::Chat,
        (headers, client),
        body,
    )
    .await
}

pub(crate) async fn completions(
    State(snap): Snap,
    Extension(id): Extension<RequestId>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(
        &snap.load_full(),
        id,
        Surface::Completions,
        (headers, client),
        body,
    )
    .await
}

pub(crate) async fn embeddings(
    State(snap): Snap,
    Extension(id): Extension<RequestId>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(
        &snap.load_full(),
        id,
        Surface::Embeddings,
        (headers, client),
        body,
    )
    .await
}

/// `POST /v1/messages`: Anthropic's Messages API, served by any upstream.
pub(crate) async fn messages(
    State(snap): Snap,
    Extension(id): Extension<RequestId>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(
        &snap.load_full(),
        id,
        Surface::Messages,
        (headers, client),
        body,
    )
    .await
}

/// `POST /v1/responses`: OpenAI's Responses API (stateless), served by any upstream.
pub(crate) async fn responses(
    State(snap): Snap,
    Extension(id): Extension<RequestId>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    proxy(
        &snap.load_full(),
        id,
        Surface::Responses,
        (headers, client),
        body,
    )
    .await
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(
    State(snap): Snap,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = id.0.clone();
    pipeline::count_tokens(&snap.load_full(), id, headers, body)
        .await
        .unwrap_or_else(|e| e.respond(gatehouse_llm::Dialect::AnthropicMessages, &request_id))
}

pub(crate) async fn list_models(
    State(snap): Snap,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let snap = snap.load_full();
    let principal = pipeline::authenticate(&snap, &headers)?;
    Ok(Json(models::list(&snap, &principal)).into_response())
}

pub(crate) async fn get_model(
    State(snap): Snap,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let snap = snap.load_full();
    let principal = pipeline::authenticate(&snap, &headers)?;
    pipeline::authorise(&snap, &principal, &id)?;
    let model = models::get(&snap, &id)
        .ok_or_else(|| GatewayError::ModelNotFound(format!("the model `{id}` does not exist")))?;
    Ok(Json(model).into_response())
}

/// `ANY /s/{service}/{*rest}`: a REST service.
pub(crate) async fn rest(
    State(snap): Snap,
    Path(params): Path<Vec<(String, String)>>,
    req: axum::extract::Request,
) -> Response {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let service = param("service").unwrap_or_default();
    let rest = param("rest").map(|r| format!("/{r}")).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let id = parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId::from_client(None));
    let client = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let mut parts = parts;
    let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    pipeline::run_rest(
        &snap.load_full(),
        id,
        &service,
        &rest,
        parts.method,
        parts.uri.query(),
        parts.headers,
        body,
        client,
        on_upgrade,
    )
    .await
    .into_response()
}

pub(crate) async fn health() -> &'static str {
    "ok"
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> GatewayError {
    GatewayError::RouteNotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
