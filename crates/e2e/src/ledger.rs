//! What users were told, and the check that nothing that happened next contradicts it: the
//! invariants every fault scenario ends with. [`Running::issue`] records every answer here, so
//! a test ends with [`Running::verify`] and nothing to remember on the way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use couponrush_cache::ReservationStore;
use couponrush_domain::CouponId;
use couponrush_storage::{Database, IssuanceStore};
use couponrush_testkit::{TestEnv, eventually};
use serde_json::Value;

use crate::{Running, batch, sample};

/// One answer a user got.
#[derive(Debug, Clone)]
pub struct Told {
    pub status: u16,
    /// `code` of an error, else `status` of the body (QUEUED, SOLD_OUT, ...).
    pub code: String,
    /// With `ALREADY_REQUESTED`: the state the user was told their request is in, `PENDING`
    /// or `ISSUED` (the body's `status`).
    pub state: Option<String>,
    pub request_id: Option<String>,
}

impl Told {
    /// Whether this answer is `code`, or told the user they hold a request in state `code`.
    fn is(&self, code: &str) -> bool {
        self.code == code || self.state.as_deref() == Some(code)
    }
}

/// Every answer of a scenario, per coupon and user.
#[derive(Debug, Default)]
pub struct Ledger {
    told: Mutex<HashMap<CouponId, HashMap<String, Vec<Told>>>>,
}

/// Counts of a verified scenario.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub answers: usize,
    pub by_code: std::collections::BTreeMap<String, usize>,
    pub issued: usize,
}

impl Ledger {
    /// Records one answer `user` got for `coupon`.
    pub fn record(&self, coupon: CouponId, user: &str, status: u16, body: &Value) {
        let code = body["code"]
            .as_str()
            .or(body["status"].as_str())
            .unwrap_or("?")
            .to_owned();
        let state = (code == "ALREADY_REQUESTED")
            .then(|| body["status"].as_str().map(str::to_owned))
            .flatten();
        let told = Told {
            status,
            code,
            state,
            request_id: body["requestId"].as_str().map(str::to_owned),
        };
        if let Ok(mut all) = self.told.lock() {
            all.entry(coupon)
                .or_default()
                .entry(user.to_owned())
                .or_default()
                .push(told);
        }
    }

    /// Every answer recorded for `coupon`, by user.
    pub fn answers(&self, coupon: CouponId) -> HashMap<String, Vec<Told>> {
        self.told
            .lock()
            .ok()
            .and_then(|all| all.get(&coupon).cloned())
            .unwrap_or_default()
    }

    /// Waits until the pipeline settled (nothing unresolved in the API, nothing pending in
    /// Redis, every participation record delivered), then checks every invariant:
    /// - issued ≤ stock, and MySQL's available quantity agrees;
    /// - a 202 ends as exactly that request's row; nobody was told 202 twice;
    /// - an UNCONFIRMED answer ends as that request's row, or as nothing at all;
    /// - "already requested" names the request the user holds;
    /// - a user told only no (sold out, unavailable, held) holds nothing;
    /// - every answered attempt is in the participation log;
    /// - reconciliation says CONSISTENT.
    pub async fn verify(
        &self,
        running: &Running,
        env: &TestEnv,
        coupon: CouponId,
        stock: u32,
    ) -> anyhow::Result<Verdict> {
        let told = self
            .told
            .lock()
            .map_err(|_| anyhow::anyhow!("ledger poisoned"))?
            .get(&coupon)
            .cloned()
            .unwrap_or_default();
        settle(running, env, coupon).await?;
        let db = Database::new(&env.settings.mysql)?;
        let issuances = IssuanceStore::new(db);
        let holders = issuances.holders(coupon).await?.context("coupon row")?;
        let issued = holders.holders.len();
        anyhow::ensure!(
            issued <= usize::try_from(stock)?,
            "{issued} issued > {stock}"
        );
        anyhow::ensure!(
            holders.available == i64::from(stock) - i64::try_from(issued)?,
            "available {} with {issued} issued of {stock}",
            holders.available
        );
        let mut verdict = Verdict {
            issued,
            ..Verdict::default()
        };
        for (user, answers) in &told {
            let held = holders
                .holders
                .get(user)
                .map(|c| c.request_id.map(|r| r.to_string()));
            check_user(user, answers, held.as_ref().map(Option::as_deref))?;
            verdict.answers += answers.len();
            for answer in answers {
                *verdict.by_code.entry(answer.code.clone()).or_default() += 1;
            }
        }
        // Records reach the log through the topic and the consumer: give them time.
        let mut missing = String::new();
        let complete = eventually(
            Duration::from_secs(60),
            "a complete participation log",
            async || {
                let logged = issuances.participation_by_user(coupon).await.ok()?;
                match log_gap(&told, &logged) {
                    None => Some(()),
                    Some(gap) => {
                        missing = gap;
                        None
                    }
                }
            },
        )
        .await;
        if complete.is_err() {
            anyhow::bail!("participation log incomplete: {missing}");
        }
        let id = coupon.to_string();
        let done = batch(env, &["reconcile", "--coupon", &id, "--output", "json"]).await?;
        let report = &done.summary["coupons"][0];
        anyhow::ensure!(
            !done.needs_attention && report["verdict"] == "CONSISTENT",
            "reconcile: {report}"
        );
        Ok(verdict)
    }
}

/// Waits until nothing is in flight: the API resolved every unconfirmed request and delivered
/// every participation record; Redis has no pending participant (every reservation is in
/// MySQL and confirmed); MySQL holds as many rows as Redis has participants.
async fn settle(running: &Running, env: &TestEnv, coupon: CouponId) -> anyhow::Result<()> {
    let redis = ReservationStore::new(&env.settings.redis)?;
    let coupons = couponrush_storage::CouponStore::new(Database::new(&env.settings.mysql)?);
    eventually(
        Duration::from_secs(60),
        "the pipeline to settle",
        async || {
            let text = running
                .client
                .get(format!("{}/metrics", running.base))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let in_api = sample(&text, "couponrush_api_issue_unresolved ").unwrap_or(0.0)
                + sample(&text, "couponrush_api_participation_records_pending ").unwrap_or(0.0);
            let counters = redis.counters(coupon).await.ok()??;
            let rows = coupons.issued_count(coupon).await.ok()?;
            (in_api == 0.0 && counters.participants == counters.issued && rows == counters.issued)
                .then_some(())
        },
    )
    .await
}

/// The first user whose answered attempts and log rows differ, `None` when none does.
fn log_gap(
    told: &HashMap<String, Vec<Told>>,
    logged: &HashMap<String, HashMap<String, u64>>,
) -> Option<String> {
    told.iter().find_map(|(user, answers)| {
        let answered = answers
            .iter()
            .filter(|a| a.status != 400 && a.status != 404)
            .count();
        let in_log: u64 = logged.get(user).map_or(0, |o| o.values().sum());
        (u64::try_from(answered).ok()? != in_log).then(|| {
            format!(
                "{user}: {answered} answers but {in_log} log rows ({:?}; told {answers:?})",
                logged.get(user)
            )
        })
    })
}

/// The invariants of one user's answers against what they hold (`Some(request id)`).
fn check_user(user: &str, told: &[Told], held: Option<Option<&str>>) -> anyhow::Result<()> {
    let ids = |code: &str| -> Vec<&str> {
        told.iter()
            .filter(|t| t.is(code))
            .filter_map(|t| t.request_id.as_deref())
            .collect()
    };
    let queued = ids("QUEUED");
    anyhow::ensure!(queued.len() <= 1, "{user} was told 202 twice: {told:?}");
    let held_id = held.flatten();
    if let Some(accepted) = queued.first() {
        anyhow::ensure!(
            held_id == Some(*accepted),
            "{user} was told 202 ({accepted}) but holds {held:?}: {told:?}"
        );
        return Ok(());
    }
    let promised: Vec<&str> = ["UNCONFIRMED", "PENDING", "ISSUED"]
        .iter()
        .flat_map(|code| ids(code))
        .collect();
    match held {
        Some(_) => anyhow::ensure!(
            held_id.is_some_and(|id| promised.contains(&id)),
            "{user} holds {held:?} without a 202 or an UNCONFIRMED/PENDING answer naming it: {told:?}"
        ),
        None => anyhow::ensure!(
            !told.iter().any(|t| t.is("PENDING") || t.is("ISSUED")),
            "{user} was told they had requested, but holds nothing: {told:?}"
        ),
    }
    Ok(())
}
