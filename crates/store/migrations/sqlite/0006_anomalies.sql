-- Anomalies the detector found: one per series, measure and window (the unique key makes a
-- cluster's nodes agree on who reports it), with what was seen, what was expected, and what
-- was done about it.
CREATE TABLE anomalies (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    dimension TEXT NOT NULL,
    value TEXT NOT NULL,
    tenant_id TEXT,
    metric TEXT NOT NULL,
    observed REAL NOT NULL,
    baseline REAL NOT NULL,
    score REAL NOT NULL,
    method TEXT NOT NULL,
    action TEXT,
    delivery TEXT,
    UNIQUE (dimension, value, metric, window_start)
);
CREATE INDEX anomalies_tenant ON anomalies (tenant_id, at);
