ALTER TABLE coupon
    DROP CONSTRAINT coupon_rate_limit_window,
    DROP COLUMN rate_limit_window_ms,
    DROP COLUMN rate_limit_per_client,
    DROP COLUMN rate_limit_per_user;
