//! Issue requests still in flight: in the issue topic past the consumer group's committed
//! offsets, so published (the user was told 202) but perhaps not yet persisted in MySQL.
//!
//! Rebuilding a coupon Redis lost must count them: loading `total − rows in MySQL` would sell
//! their units a second time. One scan reads, per partition, the group's committed offset and
//! the high watermark, then the messages between them, with a consumer of the same group that
//! never subscribes (so it never joins the group or takes partitions from the real consumers)
//! and never commits. Every step is bounded: a broker that does not answer makes the scan
//! fail, and the caller refuses to guess.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use couponrush_config::KafkaSettings;
use couponrush_domain::{CouponId, IssueRequested, ParticipantState, TopicMessage, UserId};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::MessagingError;
use crate::probe::{off_runtime, refused_by_every_broker};
use crate::replay::plan;
use crate::settings::consumer_config;

/// The issue requests found past the committed offsets, in topic order per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InFlight {
    requests: Vec<IssueRequested>,
}

impl InFlight {
    /// Every request found, of every coupon.
    pub fn requests(&self) -> &[IssueRequested] {
        &self.requests
    }

    /// The users of `coupon` with a request in flight who hold no coupon yet (`holds` says
    /// who does), each once, as pending under the request the consumer will persist: their
    /// first (one user's messages share a partition, so topic order is their order).
    pub fn pending(
        &self,
        coupon: CouponId,
        holds: impl Fn(&UserId) -> bool,
    ) -> Vec<(UserId, ParticipantState)> {
        let mut seen = HashSet::new();
        self.requests
            .iter()
            .filter(|r| r.coupon_id == coupon && !holds(&r.user_id))
            .filter(|r| seen.insert(r.user_id.clone()))
            .map(|r| {
                let state = ParticipantState::Pending {
                    request_id: r.request_id,
                    at: r.requested_at,
                };
                (r.user_id.clone(), state)
            })
            .collect()
    }
}

/// Scans `kafka.topic` from `kafka.consumer_group`'s committed offsets to the end. Cheap to
/// clone; each [`Self::scan`] uses a client of its own.
#[derive(Debug, Clone)]
pub struct InFlightScan {
    settings: KafkaSettings,
    timeout: Duration,
}

impl InFlightScan {
    /// `timeout` bounds each step: the broker answering a request, the next message arriving.
    pub fn new(settings: &KafkaSettings, timeout: Duration) -> Self {
        Self {
            settings: settings.clone(),
            timeout,
        }
    }

    /// Fails when the broker does not answer a request, or no message arrives, within the
    /// timeout: the caller must then refuse rather than guess.
    pub async fn scan(&self) -> Result<InFlight, MessagingError> {
        let (settings, timeout) = (self.settings.clone(), self.timeout);
        off_runtime(timeout, move || scan_blocking(&settings, timeout)).await
    }
}

fn scan_blocking(settings: &KafkaSettings, timeout: Duration) -> Result<InFlight, MessagingError> {
    let topic = &settings.topic;
    if let Some(reason) = refused_by_every_broker(settings, timeout) {
        return Err(MessagingError::Refused {
            address: settings.bootstrap_servers.clone(),
            reason,
        });
    }
    // `client_config` (under `consumer_config`) already forbids creating topics.
    // The issue consumers' group: its committed offsets are where in-flight requests start.
    let consumer: BaseConsumer = consumer_config(settings, &settings.consumer_group).create()?;
    let ends = plan(&consumer, topic, timeout)?;
    let mut remaining: HashMap<i32, i64> = ends
        .iter()
        .filter(|(_, (start, end))| start < end)
        .map(|(partition, (_, end))| (*partition, *end))
        .collect();
    let mut found = InFlight::default();
    if remaining.is_empty() {
        return Ok(found);
    }
    let mut assignment = TopicPartitionList::new();
    for (partition, (start, _)) in &ends {
        assignment.add_partition_offset(topic, *partition, Offset::Offset(*start))?;
    }
    consumer.assign(&assignment)?;
    while !remaining.is_empty() {
        let message = consumer
            .poll(timeout)
            .ok_or_else(|| MessagingError::Unreachable {
                address: settings.bootstrap_servers.clone(),
                timeout_ms: timeout.as_millis(),
                reason: format!(
                    "no message arrived from {topic} while {} partition(s) were still unread",
                    remaining.len()
                ),
            })??;
        let (partition, offset) = (message.partition(), message.offset());
        let Some(&end) = remaining.get(&partition) else {
            continue;
        };
        if offset + 1 >= end {
            remaining.remove(&partition);
        }
        if offset >= end {
            continue;
        }
        // Undecodable messages issue nothing (the consumer dead-letters them); participation
        // records hold no stock.
        if let Some(Ok(TopicMessage::IssueRequested(request))) =
            message.payload().map(TopicMessage::decode)
        {
            found.requests.push(request);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use couponrush_domain::RequestId;
    use time::OffsetDateTime;

    fn request(coupon: CouponId, user: &str) -> Result<IssueRequested, couponrush_domain::IdError> {
        Ok(IssueRequested::new(
            RequestId::generate(),
            coupon,
            UserId::parse(user)?,
            OffsetDateTime::now_utc(),
        ))
    }

    #[test]
    fn pending_keeps_each_users_first_request_of_the_coupon_without_a_row()
    -> Result<(), couponrush_domain::IdError> {
        let (coupon, other) = (CouponId::new(1)?, CouponId::new(2)?);
        let first = request(coupon, "ann")?;
        let found = InFlight {
            requests: vec![
                first.clone(),
                request(coupon, "ann")?,
                request(other, "bob")?,
                request(coupon, "held")?,
                request(coupon, "cid")?,
            ],
        };
        let pending = found.pending(coupon, |user| user.as_str() == "held");
        let users: Vec<&str> = pending.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(users, ["ann", "cid"]);
        assert_eq!(pending[0].1.request_id(), first.request_id);
        Ok(())
    }
}
