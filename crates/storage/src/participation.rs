//! Reading the participation log: who tried, how often, with what outcome.

use std::collections::HashMap;

use couponrush_domain::CouponId;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::database::Database;
use crate::error::StorageError;
use crate::schema::event_participation_log;

/// Reads `event_participation_log`.
#[derive(Debug, Clone)]
pub struct ParticipationLog {
    db: Database,
}

impl ParticipationLog {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Attempts logged for `coupon_id`, per user and outcome.
    pub async fn by_user(
        &self,
        coupon_id: CouponId,
    ) -> Result<HashMap<String, HashMap<String, u64>>, StorageError> {
        let mut conn = self.db.conn().await?;
        let rows: Vec<(String, String, i64)> = event_participation_log::table
            .filter(event_participation_log::coupon_id.eq(coupon_id.as_i64()))
            .group_by((
                event_participation_log::user_id,
                event_participation_log::outcome,
            ))
            .select((
                event_participation_log::user_id,
                event_participation_log::outcome,
                diesel::dsl::count_star(),
            ))
            .load(&mut conn)
            .await?;
        let mut users: HashMap<String, HashMap<String, u64>> = HashMap::new();
        for (user, outcome, count) in rows {
            users
                .entry(user)
                .or_default()
                .insert(outcome, u64::try_from(count).unwrap_or(0));
        }
        Ok(users)
    }
}
