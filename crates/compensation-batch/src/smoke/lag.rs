//! `consumer-lag`: how far behind the consumers are, from their own `/metrics`.
//!
//! Each consumer exports `kafka_consumer_lag{topic,partition}` for the partitions assigned to
//! it. During a rebalance two members may both still export one partition: per partition the
//! largest is taken (never counted twice), then summed over partitions. The sum must stay
//! below `max_lag`.

use std::collections::BTreeMap;

use super::health::Consumer;
use super::http::get_ok;
use super::metrics_text::samples;
use super::plan::Plan;

const LAG: &str = "kafka_consumer_lag";

/// The consumers' lag, summed over partitions, is below `plan.max_lag`.
pub async fn consumer_lag(plan: &Plan, consumers: &[Consumer]) -> Result<((), String), String> {
    let mut per_partition: BTreeMap<(String, String), f64> = BTreeMap::new();
    for consumer in consumers {
        let url = consumer.endpoint("/metrics")?;
        let text = get_ok(&consumer.client, &url).await?.body;
        let lags = samples(&text, LAG).map_err(|problem| format!("GET {url}: {problem}"))?;
        for sample in lags {
            if !sample.value.is_finite() || sample.value < 0.0 {
                return Err(format!(
                    "GET {url}: {LAG} {:?} = {}, not a lag",
                    sample.labels, sample.value
                ));
            }
            let label = |name: &str| sample.labels.get(name).cloned().unwrap_or_default();
            let slot = per_partition
                .entry((label("topic"), label("partition")))
                .or_insert(0.0);
            *slot = slot.max(sample.value);
        }
    }
    let total: f64 = per_partition.values().sum();
    let worst = per_partition
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|((topic, partition), lag)| format!(", largest {lag} on {topic}[{partition}]"))
        .unwrap_or_default();
    let summary = format!(
        "{LAG} {total} over {} partition(s) of {} consumer(s){worst}; limit {}",
        per_partition.len(),
        consumers.len(),
        plan.max_lag
    );
    if total < f64::from(plan.max_lag) {
        Ok(((), summary))
    } else {
        Err(format!("lag too high: {summary}"))
    }
}
