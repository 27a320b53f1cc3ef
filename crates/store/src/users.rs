//! Users, their tenant roles, admin API tokens and console sessions.
//!
//! Passwords are argon2id hashes; tokens and session ids are stored only as keyed hashes
//! (`MasterKey::hash`), so they are looked up by hashing what the client presents.

use serde_json::json;

use crate::db::{on, DbRow, Tx};
use crate::records::{Actor, AdminToken, AuditEntry, Member, Role, User};
use crate::{Store, StoreError};

fn user(row: &impl DbRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.text("id")?,
        username: row.text("username")?,
        is_owner: row.flag("is_owner")?,
        created_at: row.int("created_at")?,
    })
}

fn member(row: &impl DbRow) -> Result<Member, StoreError> {
    let role = row.text("role")?;
    Ok(Member {
        tenant_id: row.text("tenant_id")?,
        user_id: row.text("user_id")?,
        username: row.text("username")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::corrupt("member", role))?,
    })
}

fn token(row: &impl DbRow) -> Result<AdminToken, StoreError> {
    Ok(AdminToken {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        name: row.text("name")?,
        created_at: row.int("created_at")?,
        expires_at: row.opt_int("expires_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

fn user_view(u: &User) -> serde_json::Value {
    json!({"id": u.id, "username": u.username, "is_owner": u.is_owner, "password": "[redacted]"})
}

impl Store {
    /// Creates a user with an argon2id hash of `password`.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        is_owner: bool,
        actor: &Actor,
    ) -> Result<User, StoreError> {
        let u = User {
            id: crate::ids::new_id("usr_"),
            username: username.to_owned(),
            is_owner,
            created_at: crate::ids::now_ms(),
        };
        let phc = crate::secrets::password::hash(password)?;
        let audit = AuditEntry::new(actor, "create", "user", &u.id, &u.username, None)
            .after(Some(user_view(&u)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO users (id, username, password_hash, is_owner, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&u.id)
                .bind(&u.username)
                .bind(&phc)
                .bind(u.is_owner)
                .bind(u.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "user", username))?;
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(u)
    }

    /// The user whose name and password match; `None` for any mismatch (no hint which).
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let found = on!(self, pool => {
            let row = sqlx::query("SELECT id, username, is_owner, created_at, password_hash FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(r) => Some((user(&r)?, r.text("password_hash")?)),
                None => None,
            }
        });
        Ok(match found {
            Some((u, phc)) => crate::secrets::password::verify(password, &phc).then_some(u),
            None => {
                // Spend the same time as a real check, so timing does not reveal usernames.
                let _ = crate::secrets::password::verify(password, DUMMY_PHC);
                None
            }
        })
    }

    pub async fn user_by_id(&self, id: &str) -> Result<User, StoreError> {
        let found = on!(self, pool => {
            let row = sqlx::query("SELECT id, username, is_owner, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(|r| user(&r)).transpose()?
        });
        found.ok_or_else(|| StoreError::NotFound {
            kind: "user".into(),
            name: id.to_owned(),
        })
    }

    pub async fn user_by_name(&self, username: &str) -> Result<User, StoreError> {
        let found = on!(self, pool => {
            let row = sqlx::query("SELECT id, username, is_owner, created_at FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(pool)
                .await?;
            row.map(|r| user(&r)).transpose()?
        });
        found.ok_or_else(|| StoreError::NotFound {
            kind: "user".into(),
            name: username.to_owned(),
        })
    }

    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query("SELECT id, username, is_owner, created_at FROM users ORDER BY id")
                .fetch_all(pool)
                .await?;
            rows.iter().map(user).collect()
        })
    }

    pub async fn delete_user(&self, id: &str, actor: &Actor) -> Result<(), StoreError> {
        let u = self.user_by_id(id).await?;
        let audit = AuditEntry::new(actor, "delete", "user", &u.id, &u.username, None)
            .before(Some(user_view(&u)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(())
    }

    /// Gives a user a role in a tenant (or changes it).
    pub async fn set_member(
        &self,
        tenant_id: &str,
        user: &User,
        role: Role,
        actor: &Actor,
    ) -> Result<Member, StoreError> {
        let before = self
            .members_of(tenant_id)
            .await?
            .into_iter()
            .find(|m| m.user_id == user.id);
        let m = Member {
            tenant_id: tenant_id.to_owned(),
            user_id: user.id.clone(),
            username: user.username.clone(),
            role,
        };
        let audit = AuditEntry::new(
            actor,
            "set",
            "member",
            &user.id,
            &user.username,
            Some(tenant_id),
        )
        .before(before.map(|b| json!({"role": b.role})))
        .after(Some(json!({"role": role})));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO members (tenant_id, user_id, role) VALUES ($1, $2, $3) \
                         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role")
                .bind(tenant_id)
                .bind(&user.id)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(m)
    }

    pub async fn remove_member(
        &self,
        tenant_id: &str,
        user: &User,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let audit = AuditEntry::new(
            actor,
            "remove",
            "member",
            &user.id,
            &user.username,
            Some(tenant_id),
        );
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM members WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(&user.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { kind: "member".into(), name: user.username.clone() });
            }
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(())
    }

    pub async fn members_of(&self, tenant_id: &str) -> Result<Vec<Member>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query("SELECT m.tenant_id, m.user_id, u.username, m.role FROM members m \
                                    JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 ORDER BY u.username")
                .bind(tenant_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(member).collect()
        })
    }

    /// The tenants a user belongs to, with the role in each.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<Member>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query("SELECT m.tenant_id, m.user_id, u.username, m.role FROM members m \
                                    JOIN users u ON u.id = m.user_id WHERE m.user_id = $1")
                .bind(user_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(member).collect()
        })
    }

    /// Stores a new admin token (already generated; only its keyed hash is kept).
    pub async fn create_admin_token(
        &self,
        user: &User,
        name: &str,
        token: &str,
        expires_at: Option<i64>,
        actor: &Actor,
    ) -> Result<AdminToken, StoreError> {
        let t = AdminToken {
            id: crate::ids::new_id("tok_"),
            user_id: user.id.clone(),
            name: name.to_owned(),
            created_at: crate::ids::now_ms(),
            expires_at,
            revoked_at: None,
        };
        let hash = self.key.hash(token).to_vec();
        let audit = AuditEntry::new(actor, "create", "admin_token", &t.id, &t.name, None).after(
            Some(json!({"user": user.username, "name": t.name, "expires_at": t.expires_at})),
        );
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO admin_tokens (id, user_id, name, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&t.id)
                .bind(&t.user_id)
                .bind(&t.name)
                .bind(hash)
                .bind(t.created_at)
                .bind(t.expires_at)
                .execute(&mut *tx)
                .await?;
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(t)
    }

    /// The user behind a live (unrevoked, unexpired) admin token.
    pub async fn user_by_admin_token(&self, token: &str) -> Result<Option<User>, StoreError> {
        let hash = self.key.hash(token).to_vec();
        let now = crate::ids::now_ms();
        on!(self, pool => {
            let row = sqlx::query("SELECT u.id, u.username, u.is_owner, u.created_at FROM admin_tokens t \
                                   JOIN users u ON u.id = t.user_id WHERE t.hash = $1 AND t.revoked_at IS NULL \
                                   AND (t.expires_at IS NULL OR t.expires_at > $2)")
                .bind(hash)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            row.map(|r| user(&r)).transpose()
        })
    }

    pub async fn admin_tokens_of(&self, user_id: &str) -> Result<Vec<AdminToken>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query("SELECT id, user_id, name, created_at, expires_at, revoked_at FROM admin_tokens \
                                    WHERE user_id = $1 ORDER BY id")
                .bind(user_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(token).collect()
        })
    }

    /// Revokes one of `user_id`'s tokens.
    pub async fn revoke_admin_token(
        &self,
        user_id: &str,
        id: &str,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let audit = AuditEntry::new(actor, "revoke", "admin_token", id, id, None);
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(crate::ids::now_ms())
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound { kind: "admin token".into(), name: id.to_owned() });
            }
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(())
    }

    /// Records a console session (not an admin change: no audit entry, no revision).
    pub async fn create_session(
        &self,
        user_id: &str,
        session: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let hash = self.key.hash(session).to_vec();
        on!(self, pool => {
            sqlx::query("INSERT INTO sessions (hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(hash)
                .bind(user_id)
                .bind(crate::ids::now_ms())
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn user_by_session(&self, session: &str) -> Result<Option<User>, StoreError> {
        let hash = self.key.hash(session).to_vec();
        on!(self, pool => {
            let row = sqlx::query("SELECT u.id, u.username, u.is_owner, u.created_at FROM sessions s \
                                   JOIN users u ON u.id = s.user_id WHERE s.hash = $1 AND s.expires_at > $2")
                .bind(hash)
                .bind(crate::ids::now_ms())
                .fetch_optional(pool)
                .await?;
            row.map(|r| user(&r)).transpose()
        })
    }

    pub async fn delete_session(&self, session: &str) -> Result<(), StoreError> {
        let hash = self.key.hash(session).to_vec();
        on!(self, pool => {
            sqlx::query("DELETE FROM sessions WHERE hash = $1 OR expires_at <= $2")
                .bind(hash)
                .bind(crate::ids::now_ms())
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

/// A valid argon2id hash of a random string, checked against when a username is unknown.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZfbSMeJMbXAmAUOu9zHMm1arguMGGTTOBuUgzPKkiWc";
