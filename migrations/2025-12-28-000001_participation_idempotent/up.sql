-- Participation records arrive through Kafka and may be re-delivered: each attempt's request id
-- is unique, so a re-delivered record is ignored. Outcomes gain CLOSED (after the window) and
-- UNAVAILABLE (reserved, publish not acknowledged, released: the user may retry).
ALTER TABLE event_participation_log
    MODIFY request_id CHAR(36) CHARACTER SET ascii NOT NULL,
    ADD UNIQUE KEY participation_attempt_once (request_id),
    DROP CONSTRAINT participation_outcome_known;
ALTER TABLE event_participation_log
    ADD CONSTRAINT participation_outcome_known CHECK (outcome IN
        ('ACCEPTED', 'DUPLICATE', 'SOLD_OUT', 'NOT_OPEN', 'CLOSED', 'UNAVAILABLE', 'ISSUED'));
