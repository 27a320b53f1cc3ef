//! Client API keys of apps.
//!
//! A key reads `gatehouse_<id>_<secret>`: the fixed prefix lets secret scanners spot a leaked
//! key, the 10-character id is what lists show, and the 32-character secret carries 190 random
//! bits. Only the keyed hash of the whole key is stored. Rotation issues a new key and lets the
//! old one live on for the chosen overlap.

use serde_json::json;

use crate::db::{on, DbRow, Tx};
use crate::records::{ActiveKey, Actor, ApiKey, AuditEntry, Resource};
use crate::{Store, StoreError};

/// The fixed start of every client API key.
pub const KEY_PREFIX: &str = "gatehouse_";

const COLUMNS: &str =
    "id, app_id, tenant_id, name, scopes, created_at, expires_at, revoked_at, priority";

fn api_key(row: &impl DbRow) -> Result<ApiKey, StoreError> {
    let id = row.text("id")?;
    let scopes = row.text("scopes")?;
    Ok(ApiKey {
        scopes: serde_json::from_str(&scopes)
            .map_err(|e| StoreError::corrupt("api key", format!("{id}: scopes: {e}")))?,
        app_id: row.text("app_id")?,
        tenant_id: row.text("tenant_id")?,
        name: row.text("name")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        revoked_at: row.opt_int("revoked_at")?,
        priority: row.int("priority")?,
        id,
    })
}

fn key_view(k: &ApiKey) -> serde_json::Value {
    json!({"id": k.id, "app_id": k.app_id, "name": k.name, "scopes": k.scopes,
           "expires_at": k.expires_at, "revoked_at": k.revoked_at})
}

macro_rules! insert_key {
    ($tx:ident, $key:expr, $hash:expr) => {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({COLUMNS}, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&$key.id)
        .bind(&$key.app_id)
        .bind(&$key.tenant_id)
        .bind(&$key.name)
        .bind(serde_json::to_string(&$key.scopes).unwrap_or_else(|_| "[]".into()))
        .bind($key.created_at)
        .bind($key.expires_at)
        .bind($key.revoked_at)
        .bind($key.priority)
        .bind($hash)
        .execute(&mut *$tx)
        .await?
    };
}

impl Store {
    /// Issues a key for `app`; returns the record and the key, which is never shown again.
    pub async fn create_key(
        &self,
        app: &Resource,
        name: &str,
        scopes: Vec<String>,
        expires_at: Option<i64>,
        priority: i64,
        actor: &Actor,
    ) -> Result<(ApiKey, String), StoreError> {
        let tenant_id = app
            .tenant_id
            .clone()
            .ok_or_else(|| StoreError::corrupt("app", format!("{}: has no tenant", app.id)))?;
        let key = ApiKey {
            id: crate::ids::random_base32(10)?,
            app_id: app.id.clone(),
            tenant_id,
            name: name.to_owned(),
            scopes,
            created_at: crate::ids::now_ms(),
            expires_at,
            revoked_at: None,
            priority,
        };
        let secret = format!("{KEY_PREFIX}{}_{}", key.id, crate::ids::random_base62(32)?);
        let audit = AuditEntry::new(
            actor,
            "create",
            "api_key",
            &key.id,
            &key.name,
            Some(&key.tenant_id),
        )
        .after(Some(key_view(&key)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            insert_key!(tx, key, self.key.hash(&secret).to_vec());
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok((key, secret))
    }

    pub async fn keys_of(&self, app_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE app_id = $1 ORDER BY created_at, id"))
                .bind(app_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(api_key).collect()
        })
    }

    pub async fn key_by_id(&self, app_id: &str, id: &str) -> Result<ApiKey, StoreError> {
        let found = on!(self, pool => {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE app_id = $1 AND id = $2"))
                .bind(app_id)
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(|r| api_key(&r)).transpose()?
        });
        found.ok_or_else(|| StoreError::NotFound {
            kind: "api key".into(),
            name: id.to_owned(),
        })
    }

    /// Revokes a key at once.
    pub async fn revoke_key(
        &self,
        app_id: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<ApiKey, StoreError> {
        let before = self.key_by_id(app_id, id).await?;
        let after = ApiKey {
            revoked_at: Some(crate::ids::now_ms()),
            ..before.clone()
        };
        let audit = AuditEntry::new(
            actor,
            "revoke",
            "api_key",
            id,
            &before.name,
            Some(&before.tenant_id),
        )
        .before(Some(key_view(&before)))
        .after(Some(key_view(&after)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND app_id = $3")
                .bind(after.revoked_at)
                .bind(id)
                .bind(app_id)
                .execute(&mut *tx)
                .await?;
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(after)
    }

    /// Issues a successor of key `id` with the same name and scopes; the old key expires after
    /// `overlap_ms` (or at its own expiry, if sooner).
    pub async fn rotate_key(
        &self,
        app: &Resource,
        id: &str,
        overlap_ms: i64,
        actor: &Actor,
    ) -> Result<(ApiKey, String), StoreError> {
        let old = self.key_by_id(&app.id, id).await?;
        if old.revoked_at.is_some() {
            return Err(StoreError::NotFound {
                kind: "live api key".into(),
                name: id.to_owned(),
            });
        }
        let now = crate::ids::now_ms();
        let ends = now.saturating_add(overlap_ms.max(0));
        let old_expiry = Some(old.expires_at.map_or(ends, |e| e.min(ends)));
        let new = ApiKey {
            id: crate::ids::random_base32(10)?,
            created_at: now,
            ..old.clone()
        };
        let secret = format!("{KEY_PREFIX}{}_{}", new.id, crate::ids::random_base62(32)?);
        let audit = AuditEntry::new(
            actor,
            "rotate",
            "api_key",
            id,
            &old.name,
            Some(&old.tenant_id),
        )
        .before(Some(key_view(&old)))
        .after(Some(
            json!({"old_expires_at": old_expiry, "new": key_view(&new)}),
        ));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE id = $2")
                .bind(old_expiry)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_key!(tx, new, self.key.hash(&secret).to_vec());
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok((new, secret))
    }

    /// Every key that is neither revoked nor expired, with its hash: for the snapshot.
    pub async fn active_keys(&self) -> Result<Vec<ActiveKey>, StoreError> {
        let now = crate::ids::now_ms();
        on!(self, pool => {
            let rows = sqlx::query(&format!("SELECT {COLUMNS}, hash FROM api_keys WHERE revoked_at IS NULL \
                                             AND (expires_at IS NULL OR expires_at > $1)"))
                .bind(now)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ActiveKey {
                        hash: r.opt_bytes("hash")?.unwrap_or_default(),
                        key: api_key(r)?,
                    })
                })
                .collect()
        })
    }
}
