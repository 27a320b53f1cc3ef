//! The one error type of the `llm` crate.

/// Why a translation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The client asked for something the target dialect cannot express.
    #[error("{feature} is not supported by {target}")]
    Unsupported { feature: String, target: String },
    /// The request is well-formed JSON but not a valid request.
    #[error("{0}")]
    Invalid(String),
    /// An upstream body could not be parsed as its dialect says it should be.
    #[error("upstream sent a malformed {what}: {source}")]
    MalformedUpstream {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// An upstream stream could not be decoded.
    #[error("{0}")]
    Stream(String),
    /// The model catalog data could not be read.
    #[error("model catalog {file}: {message}")]
    Catalog { file: String, message: String },
}

impl LlmError {
    pub(crate) fn unsupported(feature: impl Into<String>, target: impl Into<String>) -> Self {
        Self::Unsupported {
            feature: feature.into(),
            target: target.into(),
        }
    }
}
