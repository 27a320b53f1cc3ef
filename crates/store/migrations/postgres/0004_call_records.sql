-- One record per call: who called what, what served it, every attempt, status, timing, tokens and
-- cost. Written in batches by the call log; never updated.
CREATE TABLE call_records (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    tenant_id TEXT,
    app_id TEXT,
    key_id TEXT NOT NULL,
    surface TEXT NOT NULL,
    service TEXT,
    model_asked TEXT NOT NULL,
    model_served TEXT,
    provider TEXT,
    status BIGINT NOT NULL,
    error_code TEXT,
    attempts TEXT NOT NULL,
    stream BOOLEAN NOT NULL,
    duration_ms BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cost_nano BIGINT NOT NULL
);
CREATE INDEX call_records_tenant ON call_records (tenant_id, at);
CREATE INDEX call_records_at ON call_records (at);
