//! `smoke`: the post-deploy check. Five steps, in order, each named in the report; the first
//! that fails ends the run and names the URL and what it saw:
//!
//! 1. `api-ready`: the API's `/health/live` and `/health/ready` answer 200;
//! 2. `consumers-ready`: every address of every consumer ops URL answers 200 on both;
//! 3. `consumer-lag`: the consumers' `kafka_consumer_lag` adds up to less than `max_lag`;
//! 4. `issue`: N issuances against the dedicated smoke coupon each answer 202 `QUEUED`;
//! 5. `issued`: within the deadline each reads `ISSUED` on the status endpoint and is in MySQL.
//!
//! The incident's consumer never connected while the API kept answering: a smoke test that
//! only asked the API would have passed. This one follows real requests to MySQL.

mod coupon;
mod health;
mod http;
mod issuance;
mod lag;
mod metrics_text;
mod plan;
mod report;

use couponrush_config::Settings;

use crate::output::OutputArgs;
use plan::Plan;
use report::Report;

/// The steps' names, fixed: alerts, pipelines and the canary analysis refer to them.
pub const API_READY: &str = "api-ready";
pub const CONSUMERS_READY: &str = "consumers-ready";
pub const CONSUMER_LAG: &str = "consumer-lag";
pub const ISSUE: &str = "issue";
pub const ISSUED: &str = "issued";

#[derive(Debug, clap::Args)]
pub struct SmokeArgs {
    /// Base URL of issuer-api (default: smoke.api_url).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// A consumer ops URL; its host is resolved to every address and each is checked.
    /// Repeatable; replaces smoke.consumer_ops_urls.
    #[arg(long = "consumer-ops-url", value_name = "URL")]
    pub consumer_ops_urls: Vec<String>,
    /// Issuances to make (default: smoke.count).
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
    /// The consumers' summed lag must stay below this (default: smoke.max_lag).
    #[arg(long, value_name = "N")]
    pub max_lag: Option<u32>,
    /// Time for every issuance to read ISSUED and be in MySQL (default: smoke.deadline_ms).
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<u64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs the steps; the report as JSON and whether every step passed.
pub async fn run(
    args: &SmokeArgs,
    settings: &Settings,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let plan = Plan::new(args, settings)?;
    tracing::info!(
        run = %plan.run,
        api = %plan.api,
        consumers = plan.consumers.len(),
        count = plan.count,
        "smoke test"
    );
    let mut report = Report::new(&plan);
    steps(&plan, settings, &mut report).await;
    let ok = report.ok();
    Ok((args.output.emit(&report)?, ok))
}

/// The steps in order; each runs only when the one before it passed.
async fn steps(plan: &Plan, settings: &Settings, report: &mut Report) {
    if report
        .step(API_READY, health::api_ready(plan))
        .await
        .is_none()
    {
        return;
    }
    let Some(consumers) = report
        .step(CONSUMERS_READY, health::consumers_ready(plan))
        .await
    else {
        return;
    };
    if report
        .step(CONSUMER_LAG, lag::consumer_lag(plan, &consumers))
        .await
        .is_none()
    {
        return;
    }
    let Some(issued) = report.step(ISSUE, issuance::issue(plan, settings)).await else {
        return;
    };
    report.coupon_id = Some(issued.coupon);
    report.step(ISSUED, issuance::issued(plan, &issued)).await;
}
