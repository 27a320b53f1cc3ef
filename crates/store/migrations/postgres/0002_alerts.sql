-- Budget alerts: one row per threshold crossed per period, with its webhook delivery.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    tenant_id TEXT,
    policy TEXT NOT NULL,
    limit_label TEXT NOT NULL,
    period TEXT NOT NULL,
    threshold BIGINT NOT NULL,
    used BIGINT NOT NULL,
    of BIGINT NOT NULL,
    webhook TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    detail TEXT
);
CREATE INDEX alerts_tenant ON alerts (tenant_id, id);
