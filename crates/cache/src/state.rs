//! Participant states as stored in the participants hash: `P|<request id>|<epoch ms>` while
//! pending, `I|<request id>|<epoch ms>` once persisted. Compact, and the Lua scripts can compare
//! the request id with a substring.

use couponrush_domain::{ParticipantState, RequestId};
use time::OffsetDateTime;

pub fn encode_state(state: &ParticipantState) -> String {
    let (tag, request_id, at) = match state {
        ParticipantState::Pending { request_id, at } => ('P', request_id, at),
        ParticipantState::Issued { request_id, at } => ('I', request_id, at),
    };
    format!("{tag}|{request_id}|{}", epoch_ms(*at))
}

pub fn decode_state(raw: &str) -> Option<ParticipantState> {
    let mut parts = raw.splitn(3, '|');
    let tag = parts.next()?;
    let request_id: RequestId = parts.next()?.parse().ok()?;
    let ms: i128 = parts.next()?.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(ms.checked_mul(1_000_000)?).ok()?;
    match tag {
        "P" => Some(ParticipantState::Pending { request_id, at }),
        "I" => Some(ParticipantState::Issued { request_id, at }),
        _ => None,
    }
}

/// `at` as milliseconds since the Unix epoch, as the scripts and the meta hash count time.
pub fn epoch_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn round_trip() {
        let request_id = RequestId::generate();
        let at = datetime!(2025-12-26 05:00:00.123 UTC);
        for state in [
            ParticipantState::Pending { request_id, at },
            ParticipantState::Issued { request_id, at },
        ] {
            assert_eq!(decode_state(&encode_state(&state)), Some(state));
        }
        assert_eq!(decode_state("X|nope|1"), None);
        assert_eq!(decode_state("garbage"), None);
    }
}
