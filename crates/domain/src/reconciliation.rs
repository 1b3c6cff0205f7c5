//! Reconciliation rules: how one participant's Redis state and MySQL row compare, and what a
//! coupon's counts say about it as a whole. The incident's team accepted 9,500 issued against
//! a stock of 5,000; these rules make each way of being wrong a named verdict.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::outcome::ParticipantState;

/// A coupon's verdict, from best to worst: the worst finding decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Redis and MySQL tell the same story.
    Consistent,
    /// Accepted requests are still in flight, within the grace period.
    Pending,
    /// A Redis participant has no row in MySQL, unknown to Redis.
    Orphan,
    /// An accepted request has no MySQL row and is older than the grace period.
    Lost,
    /// More issued than the total, a negative stock, or stocks that disagree beyond what is
    /// in flight.
    OverIssued,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Consistent => "CONSISTENT",
            Self::Pending => "PENDING",
            Self::Orphan => "ORPHAN",
            Self::Lost => "LOST",
            Self::OverIssued => "OVER_ISSUED",
        })
    }
}

impl Verdict {
    /// Whether nothing needs a person: the exit status of a reconciliation run.
    pub fn is_healthy(self) -> bool {
        matches!(self, Self::Consistent | Self::Pending)
    }
}

/// How one participant looks from both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Finding {
    /// Issued in MySQL and marked issued in Redis.
    Issued,
    /// Accepted in Redis, no row yet, within the grace period.
    Pending,
    /// Accepted in Redis, no row, older than the grace period; or marked issued in Redis with
    /// no row at all (a lie the status endpoint would tell).
    Lost,
    /// A row in MySQL that Redis does not know.
    Orphan,
    /// A row in MySQL while Redis still says pending past the grace period: the consumer's
    /// confirmation did not arrive. Harmless (the status endpoint falls back to MySQL), and
    /// repaired by marking it issued.
    Unconfirmed,
}

/// Classifies one user from their Redis state (if any) and whether MySQL holds a row.
/// `None` when neither side knows the user.
pub fn classify(
    redis: Option<&ParticipantState>,
    has_row: bool,
    now: OffsetDateTime,
    grace: Duration,
) -> Option<Finding> {
    let within_grace = |at: OffsetDateTime| now - at <= grace;
    match (redis, has_row) {
        (None, false) => None,
        (None, true) => Some(Finding::Orphan),
        (Some(ParticipantState::Issued { .. }), true) => Some(Finding::Issued),
        (Some(ParticipantState::Issued { .. }), false) => Some(Finding::Lost),
        (Some(ParticipantState::Pending { at, .. }), true) => Some(if within_grace(*at) {
            Finding::Issued
        } else {
            Finding::Unconfirmed
        }),
        (Some(ParticipantState::Pending { at, .. }), false) => Some(if within_grace(*at) {
            Finding::Pending
        } else {
            Finding::Lost
        }),
    }
}

/// A coupon's counts on both sides, as read by one reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CouponCounts {
    pub total: u64,
    pub mysql_rows: u64,
    pub mysql_available: i64,
    /// `None` when Redis does not have the coupon (never loaded, or lost).
    pub redis: Option<RedisCounts>,
    pub pending: u64,
    pub lost: u64,
    pub orphans: u64,
}

/// Redis's side, read atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisCounts {
    pub total: u64,
    pub stock: i64,
    pub participants: u64,
}

/// The verdict of a coupon and the reasons behind anything short of consistent.
pub fn judge(counts: &CouponCounts) -> (Verdict, Vec<String>) {
    let mut problems = Vec::new();
    let total = i128::from(counts.total);
    let rows = i128::from(counts.mysql_rows);
    let available = i128::from(counts.mysql_available);
    if rows > total {
        problems.push(format!("MySQL holds {rows} coupons for a total of {total}"));
    }
    if available < 0 {
        problems.push(format!("MySQL available quantity is {available}"));
    }
    if available != total - rows {
        problems.push(format!(
            "MySQL available quantity {available} is not total {total} minus {rows} issued"
        ));
    }
    if let Some(redis) = counts.redis {
        let stock = i128::from(redis.stock);
        let participants = i128::from(redis.participants);
        if redis.total != counts.total {
            problems.push(format!(
                "Redis was loaded with a total of {} but MySQL says {total}",
                redis.total
            ));
        }
        if stock < 0 {
            problems.push(format!("Redis stock is {stock}"));
        }
        if stock + participants != i128::from(redis.total) {
            problems.push(format!(
                "Redis stock {stock} plus {participants} participants is not its total {}",
                redis.total
            ));
        }
        // MySQL's stock runs behind Redis's by what is accepted but not persisted, and ahead
        // by rows Redis does not know. In-flight requests may move between the two reads, so
        // only a difference beyond them is a fault.
        let in_flight = i128::from(counts.pending) + i128::from(counts.lost);
        let expected = in_flight - i128::from(counts.orphans);
        let drift = (available - stock) - expected;
        if drift.abs() > i128::from(counts.pending) {
            problems.push(format!(
                "MySQL available {available} and Redis stock {stock} differ by {}, \
                 but only {expected} is explained by requests in flight and rows Redis lacks",
                available - stock
            ));
        }
    }
    let verdict = if !problems.is_empty() {
        Verdict::OverIssued
    } else if counts.lost > 0 {
        Verdict::Lost
    } else if counts.orphans > 0 {
        Verdict::Orphan
    } else if counts.pending > 0 {
        Verdict::Pending
    } else {
        Verdict::Consistent
    };
    (verdict, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RequestId;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-12-25 10:00:00 UTC);
    const GRACE: Duration = Duration::seconds(60);

    fn pending(seconds_ago: i64) -> ParticipantState {
        ParticipantState::Pending {
            request_id: RequestId::generate(),
            at: NOW - Duration::seconds(seconds_ago),
        }
    }

    #[test]
    fn participants_are_classified_by_both_sides_and_age() {
        let issued = ParticipantState::Issued {
            request_id: RequestId::generate(),
            at: NOW - Duration::hours(3),
        };
        let cases = [
            (None, false, None),
            (None, true, Some(Finding::Orphan)),
            (Some(issued), true, Some(Finding::Issued)),
            (Some(issued), false, Some(Finding::Lost)),
            (Some(pending(5)), false, Some(Finding::Pending)),
            (Some(pending(61)), false, Some(Finding::Lost)),
            (Some(pending(5)), true, Some(Finding::Issued)),
            (Some(pending(61)), true, Some(Finding::Unconfirmed)),
        ];
        for (state, row, expected) in cases {
            assert_eq!(
                classify(state.as_ref(), row, NOW, GRACE),
                expected,
                "{state:?} row={row}"
            );
        }
    }

    fn counts(rows: u64, available: i64, stock: i64, participants: u64) -> CouponCounts {
        CouponCounts {
            total: 100,
            mysql_rows: rows,
            mysql_available: available,
            redis: Some(RedisCounts {
                total: 100,
                stock,
                participants,
            }),
            pending: 0,
            lost: 0,
            orphans: 0,
        }
    }

    #[test]
    fn a_sold_out_event_fully_persisted_is_consistent() {
        assert_eq!(judge(&counts(100, 0, 0, 100)).0, Verdict::Consistent);
    }

    #[test]
    fn in_flight_requests_are_pending_then_lost() {
        let mut c = counts(90, 10, 0, 100);
        c.pending = 10;
        assert_eq!(judge(&c).0, Verdict::Pending);
        c.pending = 0;
        c.lost = 10;
        assert_eq!(judge(&c).0, Verdict::Lost);
    }

    #[test]
    fn rows_redis_lost_are_orphans() {
        let mut c = counts(100, 0, 0, 100);
        c.redis = None;
        c.orphans = 100;
        assert_eq!(judge(&c).0, Verdict::Orphan);
    }

    #[test]
    fn the_incident_is_over_issued() {
        // 9,500 issued against 5,000: the team's own check accepted this.
        let c = CouponCounts {
            total: 5000,
            mysql_rows: 9500,
            mysql_available: -4500,
            redis: Some(RedisCounts {
                total: 5000,
                stock: 0,
                participants: 5000,
            }),
            pending: 0,
            lost: 0,
            orphans: 4500,
        };
        let (verdict, reasons) = judge(&c);
        assert_eq!(verdict, Verdict::OverIssued);
        assert!(reasons[0].contains("9500"), "{reasons:?}");
    }

    #[test]
    fn stocks_that_disagree_beyond_what_is_in_flight_are_over_issued() {
        // Redis handed out 5 more than it recorded participants for.
        let (verdict, reasons) = judge(&counts(95, 5, 0, 95));
        assert_eq!(verdict, Verdict::OverIssued, "{reasons:?}");
        // A difference the pending requests explain is not.
        let mut c = counts(95, 5, 0, 100);
        c.pending = 5;
        assert_eq!(judge(&c).0, Verdict::Pending);
    }

    #[test]
    fn only_consistent_and_pending_are_healthy() {
        assert!(Verdict::Consistent.is_healthy() && Verdict::Pending.is_healthy());
        for v in [Verdict::Orphan, Verdict::Lost, Verdict::OverIssued] {
            assert!(!v.is_healthy());
        }
    }
}
