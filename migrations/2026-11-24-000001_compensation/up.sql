-- A compensation: everyone who took part in a source coupon's event during a window and holds
-- none of it gets the compensation coupon, once. One row per (source, window) makes a re-run
-- (or a second run at the same time) find the same compensation coupon instead of creating
-- another, and tells reconciliation that the coupon is granted, not raced for in Redis.
CREATE TABLE compensation (
    id                     BIGINT       NOT NULL AUTO_INCREMENT,
    source_coupon_id       BIGINT       NOT NULL,
    window_starts_at       DATETIME(3)  NOT NULL,
    window_ends_at         DATETIME(3)  NOT NULL,
    compensation_coupon_id BIGINT       NOT NULL,
    created_at             DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY compensation_once (source_coupon_id, window_starts_at, window_ends_at),
    KEY compensation_by_coupon (compensation_coupon_id),
    CONSTRAINT compensation_source FOREIGN KEY (source_coupon_id) REFERENCES coupon (id),
    CONSTRAINT compensation_coupon FOREIGN KEY (compensation_coupon_id) REFERENCES coupon (id),
    CONSTRAINT compensation_window_ordered CHECK (window_ends_at > window_starts_at),
    CONSTRAINT compensation_not_itself CHECK (compensation_coupon_id <> source_coupon_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
