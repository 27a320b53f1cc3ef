-- The hourly rollups leave the key out (key_id is ''): rebuilt from the minute rollups, which
-- hold everything they held.
DELETE FROM call_rollups_hour;
INSERT INTO call_rollups_hour
SELECT (minute / 3600000) * 3600000, tenant_id, app_id, '', model, provider, service, status_class,
    SUM(requests), SUM(errors), SUM(input_tokens), SUM(output_tokens), SUM(cost_nano), SUM(duration_ms),
    SUM(l0), SUM(l1), SUM(l2), SUM(l3), SUM(l4), SUM(l5), SUM(l6), SUM(l7), SUM(l8), SUM(l9), SUM(l10), SUM(l11),
    SUM(ttft_count),
    SUM(t0), SUM(t1), SUM(t2), SUM(t3), SUM(t4), SUM(t5), SUM(t6), SUM(t7), SUM(t8), SUM(t9), SUM(t10), SUM(t11)
FROM call_rollups
GROUP BY (minute / 3600000) * 3600000, tenant_id, app_id, model, provider, service, status_class;

-- Log searches filter by tenant, app or key and page newest first by id (ids are time-ordered):
-- indexes that hold that order find a page without sorting every record of the tenant.
DROP INDEX call_records_tenant;
DROP INDEX call_records_key;
DROP INDEX call_records_app;
CREATE INDEX call_records_tenant ON call_records (tenant_id, id);
CREATE INDEX call_records_key ON call_records (key_id, id);
CREATE INDEX call_records_app ON call_records (app_id, id);
