-- An event's own abuse limits on the issue endpoint (docs/security.md, "Abuse limits"): NULL
-- keeps the configured default ([rate_limit]), a value overrides it; 0 means "no limit". Loaded
-- into Redis with the coupon, where the reservation script reads them.
ALTER TABLE coupon
    ADD COLUMN rate_limit_per_user   INT UNSIGNED NULL,
    ADD COLUMN rate_limit_per_client INT UNSIGNED NULL,
    ADD COLUMN rate_limit_window_ms  INT UNSIGNED NULL,
    ADD CONSTRAINT coupon_rate_limit_window CHECK (rate_limit_window_ms BETWEEN 1000 AND 3600000);
