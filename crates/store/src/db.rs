//! Opening a store, its migrations, and the plumbing every repository method shares.
//!
//! `on!` writes a query once and runs it on whichever pool the store holds: the block is expanded
//! once per driver, so each back end gets native types and binds. Writes go through a
//! transaction that also appends the audit entry and bumps the revision (`Tx::finish`); on
//! PostgreSQL the bump is announced with `NOTIFY gatehouse_revision` at commit.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::watch;

use crate::records::AuditEntry;
use crate::secrets::MasterKey;
use crate::StoreError;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The control plane's repository. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) key: Arc<MasterKey>,
    /// The latest revision this process wrote; the reloader watches it (in-process notify).
    pub(crate) written: Arc<watch::Sender<i64>>,
}

/// Runs `$body` with `$pool` bound to the store's pool, whatever its driver.
macro_rules! on {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on;

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "control plane",
        include_str!("../migrations/sqlite/0001_control_plane.sql"),
    ),
    (
        2,
        "alerts",
        include_str!("../migrations/sqlite/0002_alerts.sql"),
    ),
    (
        3,
        "key priority",
        include_str!("../migrations/sqlite/0003_key_priority.sql"),
    ),
    (
        4,
        "call records",
        include_str!("../migrations/sqlite/0004_call_records.sql"),
    ),
    (
        5,
        "call log",
        include_str!("../migrations/sqlite/0005_call_log.sql"),
    ),
    (
        6,
        "anomalies",
        include_str!("../migrations/sqlite/0006_anomalies.sql"),
    ),
    (
        7,
        "rollup resolutions",
        include_str!("../migrations/sqlite/0007_rollup_resolutions.sql"),
    ),
    (
        8,
        "rollup reads",
        include_str!("../migrations/sqlite/0008_rollup_reads.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "control plane",
        include_str!("../migrations/postgres/0001_control_plane.sql"),
    ),
    (
        2,
        "alerts",
        include_str!("../migrations/postgres/0002_alerts.sql"),
    ),
    (
        3,
        "key priority",
        include_str!("../migrations/postgres/0003_key_priority.sql"),
    ),
    (
        4,
        "call records",
        include_str!("../migrations/postgres/0004_call_records.sql"),
    ),
    (
        5,
        "call log",
        include_str!("../migrations/postgres/0005_call_log.sql"),
    ),
    (
        6,
        "anomalies",
        include_str!("../migrations/postgres/0006_anomalies.sql"),
    ),
    (
        7,
        "rollup resolutions",
        include_str!("../migrations/postgres/0007_rollup_resolutions.sql"),
    ),
    (
        8,
        "rollup reads",
        include_str!("../migrations/postgres/0008_rollup_reads.sql"),
    ),
];

fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = list
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

impl Store {
    /// Opens `url` (`sqlite://PATH`, `postgres://…`), creating a SQLite file if missing, and
    /// applies pending migrations.
    pub async fn open(url: &str, key: MasterKey) -> Result<Self, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // 32 MiB of page cache per connection (SQLite's default is 2 MiB): the call
                // log's indexes and rollups outgrow 2 MiB within hours.
                .pragma("cache_size", "-32768");
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await?;
            migrator(SQLITE_MIGRATIONS).run(&pool).await?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            migrator(POSTGRES_MIGRATIONS).run(&pool).await?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let store = Self {
            pool,
            key: Arc::new(key),
            written: Arc::new(watch::channel(0).0),
        };
        let rev = store.revision().await?;
        store.written.send_replace(rev);
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The master key, for hashing presented credentials.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The master key, shared (the data plane's snapshots hash keys with it).
    pub fn shared_key(&self) -> Arc<MasterKey> {
        Arc::clone(&self.key)
    }

    /// The current revision: it moves on every write, from any node.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let v: i64 = on!(self, pool => sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(pool)
            .await?);
        Ok(v)
    }

    /// Revisions written by this process, as they are committed.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.written.subscribe()
    }

    /// A connection that receives other nodes' `NOTIFY gatehouse_revision`; `None` on SQLite,
    /// where every writer shares this process.
    pub async fn listen(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(None),
            Pool::Postgres(pool) => {
                let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
                l.listen("gatehouse_revision").await?;
                Ok(Some(l))
            }
        }
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        on!(self, pool => pool.close().await);
    }

    pub(crate) fn announce(&self, rev: i64) {
        self.written.send_if_modified(|v| {
            let newer = rev > *v;
            if newer {
                *v = rev;
            }
            newer
        });
    }
}

/// A write transaction's closing steps: the audit entry, the revision bump, the notification.
pub(crate) trait Tx {
    async fn finish(self, audit: &AuditEntry) -> Result<i64, StoreError>;
}

macro_rules! impl_tx {
    ($db:ty, $notify:expr) => {
        impl Tx for sqlx::Transaction<'_, $db> {
            async fn finish(mut self, a: &AuditEntry) -> Result<i64, StoreError> {
                sqlx::query(
                    "INSERT INTO audit (id, at, actor, tenant_id, action, resource_kind, \
                     resource_id, resource_name, before, after) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&a.id)
                .bind(a.at)
                .bind(&a.actor)
                .bind(&a.tenant_id)
                .bind(&a.action)
                .bind(&a.resource_kind)
                .bind(&a.resource_id)
                .bind(&a.resource_name)
                .bind(a.before.as_ref().map(|v| v.to_string()))
                .bind(a.after.as_ref().map(|v| v.to_string()))
                .execute(&mut *self)
                .await?;
                let rev: i64 = sqlx::query_scalar(
                    "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value",
                )
                .fetch_one(&mut *self)
                .await?;
                if $notify {
                    sqlx::query("SELECT pg_notify('gatehouse_revision', $1)")
                        .bind(rev.to_string())
                        .execute(&mut *self)
                        .await?;
                }
                self.commit().await?;
                Ok(rev)
            }
        }
    };
}
impl_tx!(sqlx::Sqlite, false);
impl_tx!(sqlx::Postgres, true);

/// Column access that reads the same on both drivers.
/// Parameter `n` (from 1) of a statement: PostgreSQL's `$n`; on SQLite a bare `?` (bound in
/// order), because SQLite keeps named and numbered parameters (`$n`, `?n`) in a list that sqlx
/// searches once per parameter, which makes a batch statement of thousands of parameters cost
/// quadratic time (100 ms instead of 4 for one 256-record insert).
pub(crate) fn param(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    }
}

pub(crate) trait DbRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error>;
    fn float(&self, col: &str) -> Result<f64, sqlx::Error>;
}

macro_rules! impl_row {
    ($row:ty) => {
        impl DbRow for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(col)
            }
            fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
                self.try_get(col)
            }
            fn float(&self, col: &str) -> Result<f64, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}
impl_row!(SqliteRow);
impl_row!(PgRow);
