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
    observed DOUBLE PRECISION NOT NULL,
    baseline DOUBLE PRECISION NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    method TEXT NOT NULL,
    action TEXT,
    delivery TEXT,
    UNIQUE (dimension, value, metric, window_start)
);
CREATE INDEX anomalies_tenant ON anomalies (tenant_id, at);
