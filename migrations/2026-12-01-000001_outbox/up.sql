-- The transactional outbox (docs/events/): one row per fact other systems must learn, written
-- in the transaction that makes it true, so an event exists exactly when its coupon does.
-- Published by a relay that claims pending rows in `seq` order (FOR UPDATE SKIP LOCKED) and
-- marks them published, or by Debezium's outbox event router, whose default column names these
-- are: id (the event id), aggregatetype, aggregateid (the user id: the topic's key), type,
-- payload (the event's JSON). No key on id: it is a new UUIDv7 per row, and consumers
-- deduplicate on it. traceparent: the W3C trace context of the request that led to the event,
-- when it was traced, for the published message's headers. Published rows are purged in
-- batches.
CREATE TABLE outbox (
    seq            BIGINT        NOT NULL AUTO_INCREMENT,
    id             CHAR(36)      CHARACTER SET ascii NOT NULL,
    aggregatetype  VARCHAR(32)   CHARACTER SET ascii NOT NULL,
    aggregateid    VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    type           VARCHAR(32)   CHARACTER SET ascii NOT NULL,
    payload        VARCHAR(4096) NOT NULL,
    coupon_id      BIGINT        NOT NULL,
    traceparent    VARCHAR(55)   CHARACTER SET ascii NULL,
    created_at     DATETIME(3)   NOT NULL,
    published_at   DATETIME(3)   NULL,
    PRIMARY KEY (seq),
    KEY outbox_pending (published_at, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
