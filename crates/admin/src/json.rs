//! Request bodies: JSON whose errors are the admin API's own, with the field path.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body of type `T`; a bad body is a 422 naming the field (or a 400 when it is not JSON).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        parse(&bytes).map(Body)
    }
}

/// Parses JSON into `T`, naming the path of the first field that does not fit.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(if bytes.is_empty() { b"{}" } else { bytes })
            .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    from_value(value)
}

/// Deserialises a JSON value into `T`, naming the path of the first field that does not fit.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ApiError::field(&path, e.into_inner().to_string())
    })
}
