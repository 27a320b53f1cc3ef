//! The admin API's errors, and the one place they become JSON responses.
//!
//! Every error answers `{"error": {"status", "code", "message", "fields"?}}`; validation errors
//! list each problem with its field path in the request body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_store::StoreError;
use serde::Serialize;

/// One problem with one field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("sign in: send `Authorization: Bearer <admin token>` or log in for a session cookie")]
    Unauthenticated,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: String, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{kind} `{name}` is managed by the config file; change it there (or remove it from the file) instead")]
    FileManaged { kind: String, name: String },
    #[error("{kind} `{name}` changed since you read it (now at revision {current}); read it again and retry")]
    Stale {
        kind: String,
        name: String,
        current: i64,
    },
    #[error("the request is invalid")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn not_found(kind: &str, name: &str) -> Self {
        Self::NotFound {
            kind: kind.to_owned(),
            name: name.to_owned(),
        }
    }

    pub(crate) fn field(path: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError {
            path: path.to_owned(),
            message: message.into(),
        }])
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::FileManaged { .. } => (StatusCode::CONFLICT, "file_managed"),
            Self::Stale { .. } => (StatusCode::PRECONDITION_FAILED, "stale_revision"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NoRoute(_) => (StatusCode::NOT_FOUND, "no_route"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { kind, name } => {
                Self::Conflict(format!("{kind} `{name}` already exists"))
            }
            StoreError::NotFound { kind, name } => Self::NotFound { kind, name },
            StoreError::Stale {
                kind,
                name,
                current,
                ..
            } => Self::Stale {
                kind,
                name,
                current,
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    status: u16,
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [FieldError]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "admin API internal error");
        }
        let fields = match &self {
            Self::Invalid(f) => Some(f.as_slice()),
            _ => None,
        };
        let message = match &self {
            Self::Invalid(f) => f
                .iter()
                .map(|e| {
                    if e.path.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{}: {}", e.path, e.message)
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        };
        let body = Body {
            error: Inner {
                status: status.as_u16(),
                code,
                message,
                fields,
            },
        };
        (status, Json(body)).into_response()
    }
}
