-- Keys carry a priority: higher ones leave an overloaded provider's queue first.
ALTER TABLE api_keys ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
