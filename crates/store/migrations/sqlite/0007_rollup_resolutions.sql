-- Hourly and daily rollups: the same columns as call_rollups (`minute` holds the bucket's
-- start), maintained in the same transaction, so month-long queries read days, not minutes.
CREATE TABLE call_rollups_hour (
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
CREATE INDEX call_rollups_hour_tenant ON call_rollups_hour (tenant_id, minute);
CREATE TABLE call_rollups_day (
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
CREATE INDEX call_rollups_day_tenant ON call_rollups_day (tenant_id, minute);
