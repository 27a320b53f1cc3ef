-- The control plane: users and their access, the declarative resources, API keys,
-- subscriptions and the audit log. Times are Unix milliseconds; specs are JSON text.

-- Bumped by every write; nodes rebuild their snapshot when it moves.
CREATE TABLE revision (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 1);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_owner BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

-- Tenants, providers, models, services and apps: one shape, one table. `ns` is the name's
-- namespace: '' for install-wide names, the tenant id for apps.
CREATE TABLE resources (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    tenant_id TEXT REFERENCES resources (id) ON DELETE CASCADE,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    secret BYTEA,
    managed_by TEXT,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (kind, ns, name)
);
CREATE INDEX resources_tenant ON resources (tenant_id, kind);

CREATE TABLE members (
    tenant_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE sessions (
    hash BYTEA PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    hash BYTEA NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_keys_app ON api_keys (app_id);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    service_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    decided_by TEXT,
    reason TEXT,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (app_id, service_id)
);

CREATE TABLE audit (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    tenant_id TEXT,
    action TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE INDEX audit_tenant ON audit (tenant_id, id);
