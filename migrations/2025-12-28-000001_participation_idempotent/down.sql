ALTER TABLE event_participation_log
    DROP CONSTRAINT participation_outcome_known,
    DROP KEY participation_attempt_once,
    MODIFY request_id CHAR(36) CHARACTER SET ascii NULL;
ALTER TABLE event_participation_log
    ADD CONSTRAINT participation_outcome_known
        CHECK (outcome IN ('ACCEPTED', 'DUPLICATE', 'SOLD_OUT', 'NOT_OPEN', 'ISSUED'));
