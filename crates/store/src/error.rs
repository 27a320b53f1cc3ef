//! What can go wrong in the store.

/// A store failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported store url `{0}`: use sqlite://PATH or postgres://…")]
    Url(String),
    #[error("{kind} `{name}` already exists")]
    Conflict { kind: String, name: String },
    #[error("{kind} `{name}` does not exist")]
    NotFound { kind: String, name: String },
    /// An `If-Match` / expected revision no longer matches: somebody else changed it first.
    #[error(
        "{kind} `{name}` was changed by someone else (revision {current}, expected {expected})"
    )]
    Stale {
        kind: String,
        name: String,
        current: i64,
        expected: i64,
    },
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            what: what.to_owned(),
            detail: detail.to_string(),
        }
    }

    /// Turns a unique-constraint violation into `Conflict`; other errors pass.
    pub(crate) fn unique(e: sqlx::Error, kind: &str, name: &str) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => Self::Conflict {
                kind: kind.to_owned(),
                name: name.to_owned(),
            },
            _ => Self::Db(e),
        }
    }
}
