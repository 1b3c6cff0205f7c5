//! The comparison itself: every participant Redis knows and every holder MySQL has, each given
//! a finding (`couponrush_domain::reconciliation::classify`), counted and sampled.

use std::collections::{BTreeMap, HashMap};

use couponrush_cache::ReservationStore;
use couponrush_domain::reconciliation::{Finding, classify};
use couponrush_domain::{CouponId, ParticipantState};
use couponrush_storage::IssuedCoupon;
use time::{Duration, OffsetDateTime};

use super::report::{Counts, Kind, Samples};

/// What the two sides say about one coupon's participants.
pub(super) struct Comparison<'a> {
    /// Users by finding, sorted.
    users: BTreeMap<Finding, Vec<&'a str>>,
    /// LOST users with the state Redis holds for them (what a repair re-publishes).
    pub(super) lost: Vec<(&'a str, ParticipantState)>,
    /// Participant states this build cannot read.
    pub(super) unreadable: u64,
}

impl<'a> Comparison<'a> {
    /// Compares Redis's `states` (read first) with MySQL's `holders` (read after). A holder the
    /// Redis scan did not see is looked up once more before being called an orphan: it may
    /// have been reserved and persisted after the scan passed.
    pub(super) async fn make(
        cache: &ReservationStore,
        id: CouponId,
        kind: Kind,
        states: &'a HashMap<String, Option<ParticipantState>>,
        holders: &'a HashMap<String, IssuedCoupon>,
        now: OffsetDateTime,
        grace: Duration,
    ) -> Result<Self, couponrush_cache::CacheError> {
        let mut users: BTreeMap<Finding, Vec<&str>> = BTreeMap::new();
        let mut lost = Vec::new();
        let mut unreadable = 0u64;
        for (user, state) in states {
            let Some(state) = *state else {
                unreadable += 1;
                continue;
            };
            let Some(finding) = classify(Some(&state), holders.contains_key(user), now, grace)
            else {
                continue;
            };
            if finding == Finding::Lost {
                lost.push((user.as_str(), state));
            }
            users.entry(finding).or_default().push(user);
        }
        if kind == Kind::Event {
            let unseen: Vec<&str> = holders
                .keys()
                .filter(|user| !states.contains_key(*user))
                .map(String::as_str)
                .collect();
            let again = cache.states_of(id, &unseen).await?;
            for (user, state) in unseen.into_iter().zip(again) {
                let finding = if state.is_some() {
                    Finding::Issued
                } else {
                    Finding::Orphan
                };
                users.entry(finding).or_default().push(user);
            }
        } else {
            // A compensation coupon lives in MySQL only: every holder is what it should be.
            users
                .entry(Finding::Issued)
                .or_default()
                .extend(holders.keys().map(String::as_str));
        }
        for list in users.values_mut() {
            list.sort_unstable();
        }
        Ok(Self {
            users,
            lost,
            unreadable,
        })
    }

    /// The users given `finding`.
    pub(super) fn users(&self, finding: Finding) -> &[&'a str] {
        self.users.get(&finding).map_or(&[], Vec::as_slice)
    }

    pub(super) fn counts(&self) -> Counts {
        let n = |finding| u64::try_from(self.users(finding).len()).unwrap_or(u64::MAX);
        Counts {
            issued: n(Finding::Issued),
            pending: n(Finding::Pending),
            lost: n(Finding::Lost),
            orphan: n(Finding::Orphan),
            unconfirmed: n(Finding::Unconfirmed),
        }
    }

    /// Up to `per_finding` users of each finding a person should look at.
    pub(super) fn samples(&self, per_finding: usize) -> Samples {
        let sample = |finding| {
            self.users(finding)
                .iter()
                .take(per_finding)
                .map(|user| (*user).to_owned())
                .collect()
        };
        Samples {
            pending: sample(Finding::Pending),
            lost: sample(Finding::Lost),
            orphan: sample(Finding::Orphan),
            unconfirmed: sample(Finding::Unconfirmed),
        }
    }
}
