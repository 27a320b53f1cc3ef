-- The call record's remaining fields: who called from where, how long the gateway itself took,
-- time to first token, reasoning tokens, tags, and (by policy) the redacted bodies.
ALTER TABLE call_records ADD COLUMN end_user TEXT;
ALTER TABLE call_records ADD COLUMN client_ip TEXT;
ALTER TABLE call_records ADD COLUMN user_agent TEXT;
ALTER TABLE call_records ADD COLUMN dialect TEXT NOT NULL DEFAULT 'openai';
ALTER TABLE call_records ADD COLUMN route TEXT;
ALTER TABLE call_records ADD COLUMN error_message TEXT;
ALTER TABLE call_records ADD COLUMN upstream_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN overhead_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN ttft_ms BIGINT;
ALTER TABLE call_records ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE call_records ADD COLUMN request_body TEXT;
ALTER TABLE call_records ADD COLUMN response_body TEXT;
CREATE INDEX call_records_key ON call_records (key_id, at);
CREATE INDEX call_records_app ON call_records (app_id, at);

-- Per-minute aggregates, maintained in the transaction that writes the records they count, so
-- dashboards read these and never scan raw records. Absent dimensions are ''.
-- Latency buckets (ms, upper bounds): 10 25 50 100 250 500 1000 2500 5000 10000 30000 +inf.
CREATE TABLE call_rollups (
    minute BIGINT NOT NULL,
    tenant_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    service TEXT NOT NULL,
    status_class TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_nano BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    l0 BIGINT NOT NULL, l1 BIGINT NOT NULL, l2 BIGINT NOT NULL, l3 BIGINT NOT NULL,
    l4 BIGINT NOT NULL, l5 BIGINT NOT NULL, l6 BIGINT NOT NULL, l7 BIGINT NOT NULL,
    l8 BIGINT NOT NULL, l9 BIGINT NOT NULL, l10 BIGINT NOT NULL, l11 BIGINT NOT NULL,
    ttft_count BIGINT NOT NULL,
    t0 BIGINT NOT NULL, t1 BIGINT NOT NULL, t2 BIGINT NOT NULL, t3 BIGINT NOT NULL,
    t4 BIGINT NOT NULL, t5 BIGINT NOT NULL, t6 BIGINT NOT NULL, t7 BIGINT NOT NULL,
    t8 BIGINT NOT NULL, t9 BIGINT NOT NULL, t10 BIGINT NOT NULL, t11 BIGINT NOT NULL,
    PRIMARY KEY (minute, tenant_id, app_id, key_id, model, provider, service, status_class)
);
CREATE INDEX call_rollups_tenant ON call_rollups (tenant_id, minute);
