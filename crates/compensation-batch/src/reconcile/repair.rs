//! `reconcile --repair`: acting on what the comparison found.

use std::collections::HashMap;

use anyhow::Context;
use couponrush_domain::{CouponId, IssueRequested, ParticipantState, RequestId, UserId};
use couponrush_messaging::InFlight;
use couponrush_storage::{CouponRecord, Holders, IssuedCoupon};
use serde::Serialize;
use time::OffsetDateTime;

use super::{REPUBLISH_CONCURRENCY, Sources};

#[derive(Debug, Default, Serialize)]
pub(super) struct Repair {
    /// Why nothing was repaired, when repairing could have made things worse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) refused: Option<String>,
    /// LOST requests published to Kafka again, under their original request ids.
    pub(super) republished: u64,
    /// The coupon was missing from Redis and was loaded now.
    pub(super) redis_reloaded: bool,
    /// The stock it was loaded with: total − MySQL holders − requests in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) loaded_stock: Option<u64>,
    /// Holders Redis did not know, recorded in Redis as issued.
    pub(super) restored: u64,
    /// Users with a request in flight (not yet in MySQL), recorded in Redis as pending.
    pub(super) restored_pending: u64,
    /// Rows Redis still called pending, marked issued.
    pub(super) confirmed: u64,
}

/// Rebuilds a coupon Redis lost entirely, as the warm-up does: stock `total − holders −
/// requests in flight`, holders as issued, in-flight users as pending. Refuses (and says why)
/// when the requests in flight could not be counted: MySQL's stock alone would sell theirs
/// again.
pub(super) async fn rebuild_lost(
    sources: &Sources,
    coupon: &CouponRecord,
    mysql: &Holders,
    in_flight: &Result<InFlight, String>,
) -> anyhow::Result<Repair> {
    let in_flight = match in_flight {
        Ok(found) => found,
        Err(reason) => {
            return Ok(Repair {
                refused: Some(format!(
                    "Redis lost the coupon and the requests still in flight could not be \
                     counted ({reason}); loading it could sell their coupons twice, so nothing \
                     was loaded"
                )),
                ..Repair::default()
            });
        }
    };
    let issued = mysql
        .states()
        .context("unreadable user id in coupon_user")?;
    let pending = in_flight.pending(coupon.id, |user| mysql.holders.contains_key(user.as_str()));
    let rebuilt = sources
        .cache
        .rebuild_lost(coupon.id, &coupon.spec, &issued, &pending)
        .await?;
    Ok(Repair {
        redis_reloaded: rebuilt.restored.loaded,
        loaded_stock: rebuilt.restored.loaded.then_some(rebuilt.stock),
        restored: u64::try_from(issued.len()).unwrap_or(u64::MAX),
        restored_pending: u64::try_from(pending.len()).unwrap_or(u64::MAX),
        ..Repair::default()
    })
}

/// Acts on what the comparison found: only on facts MySQL or Redis already record, so a
/// second run finds nothing more to do.
pub(super) async fn apply_repairs(
    sources: &Sources,
    coupon: &CouponRecord,
    available: i64,
    lost: &[(&str, ParticipantState)],
    orphans: &[&str],
    unconfirmed: &[&str],
    holders: &HashMap<String, IssuedCoupon>,
) -> anyhow::Result<Repair> {
    let id = coupon.id;
    let mut done = Repair::default();

    // LOST: the consumer never persisted them. Re-publishing under the original request id is
    // safe: the consumer inserts at most one row per user and marks that request issued.
    if let Some(publisher) = &sources.publisher {
        let requests: Vec<IssueRequested> = lost
            .iter()
            .filter_map(|(user, state)| {
                let user = UserId::parse(user).ok()?;
                let (ParticipantState::Pending { request_id, at }
                | ParticipantState::Issued { request_id, at }) = *state;
                Some(IssueRequested::new(request_id, id, user, at))
            })
            .collect();
        for chunk in requests.chunks(REPUBLISH_CONCURRENCY) {
            let sent = futures::future::join_all(chunk.iter().map(|r| publisher.publish(r))).await;
            for result in sent {
                result.context("re-publishing a lost request")?;
                done.republished += 1;
            }
        }
    }

    // ORPHAN: Redis lost what MySQL holds; record those holders as issued (loading the coupon
    // with MySQL's stock if Redis lost it entirely).
    let parsed: Vec<(UserId, ParticipantState)> = orphans
        .iter()
        .filter_map(|user| {
            let held = holders.get(*user)?;
            Some((UserId::parse(user).ok()?, held.state()))
        })
        .collect();
    let restore: Vec<(&UserId, ParticipantState)> =
        parsed.iter().map(|(user, state)| (user, *state)).collect();
    if !restore.is_empty() {
        let restored = sources
            .cache
            .restore(id, &coupon.spec, available, &restore)
            .await?;
        done.redis_reloaded = restored.loaded;
        done.restored = restored.holders;
    }

    // UNCONFIRMED: persisted, but Redis was never told.
    let confirm: Vec<(UserId, RequestId, OffsetDateTime)> = unconfirmed
        .iter()
        .filter_map(|user| {
            let held = holders.get(*user)?;
            Some((UserId::parse(user).ok()?, held.request_id?, held.issued_at))
        })
        .collect();
    let confirm: Vec<(CouponId, &UserId, RequestId, OffsetDateTime)> = confirm
        .iter()
        .map(|(user, request, at)| (id, user, *request, *at))
        .collect();
    done.confirmed = sources.cache.mark_issued_many(&confirm).await?;
    Ok(done)
}
