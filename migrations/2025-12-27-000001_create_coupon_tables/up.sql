-- One first-come-first-served coupon event and its stock.
-- available_quantity is decremented once per issued coupon; the CHECK makes going below zero
-- (the incident's 9,500 issued against 5,000) an error rather than a number.
CREATE TABLE coupon (
    id                  BIGINT            NOT NULL AUTO_INCREMENT,
    name                VARCHAR(100)      NOT NULL,
    discount_amount     INT UNSIGNED      NOT NULL,
    total_quantity      INT UNSIGNED      NOT NULL,
    available_quantity  INT               NOT NULL,
    issue_starts_at     DATETIME(3)       NOT NULL,
    issue_ends_at       DATETIME(3)       NOT NULL,
    expiry_days         SMALLINT UNSIGNED NOT NULL,
    created_at          DATETIME(3)       NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    CONSTRAINT coupon_available_not_negative CHECK (available_quantity >= 0),
    CONSTRAINT coupon_available_within_total CHECK (available_quantity <= total_quantity),
    CONSTRAINT coupon_window_ordered CHECK (issue_ends_at > issue_starts_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A coupon held by a user: at most one per coupon and user.
-- user_id is opaque ASCII compared byte for byte, as Redis compares it.
CREATE TABLE coupon_user (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    coupon_id   BIGINT       NOT NULL,
    user_id     VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    request_id  CHAR(36)     CHARACTER SET ascii NOT NULL,
    status      VARCHAR(16)  CHARACTER SET ascii NOT NULL DEFAULT 'ACTIVE',
    issued_at   DATETIME(3)  NOT NULL,
    expires_at  DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY coupon_user_once (coupon_id, user_id),
    KEY coupon_user_by_user (user_id),
    CONSTRAINT coupon_user_coupon FOREIGN KEY (coupon_id) REFERENCES coupon (id),
    CONSTRAINT coupon_user_status_known CHECK (status IN ('ACTIVE', 'USED', 'EXPIRED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every attempt to take part, whatever its outcome: the input of compensation jobs.
CREATE TABLE event_participation_log (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    coupon_id    BIGINT       NOT NULL,
    user_id      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    outcome      VARCHAR(16)  CHARACTER SET ascii NOT NULL,
    request_id   CHAR(36)     CHARACTER SET ascii NULL,
    occurred_at  DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    KEY participation_by_coupon_time (coupon_id, occurred_at),
    KEY participation_by_coupon_user (coupon_id, user_id),
    CONSTRAINT participation_outcome_known
        CHECK (outcome IN ('ACCEPTED', 'DUPLICATE', 'SOLD_OUT', 'NOT_OPEN', 'ISSUED'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
