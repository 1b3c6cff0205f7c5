//! People taking part in a check's coupon event: real `POST /coupons/{id}/issue` requests,
//! each from a new user, as a burst (the event's opening) or a steady trickle (the minutes
//! after), with their answers counted by status; and the one request a consumer must
//! dead-letter ([`dead_letter_one`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use couponrush_domain::CouponId;
use tokio::task::JoinHandle;

use crate::run_env::RunEnv;

/// Publishes one issue request, encoded as issuer-api encodes it, for a coupon the run's
/// (fresh) database does not have, onto the run's topic: the consumer dead-letters it
/// (`unknown-coupon`). prometheus-client leaves a labelled family out of `/metrics` until it
/// has a sample, so this is what makes `coupon_consumer_dead_letters_total` appear.
pub async fn dead_letter_one(env: &RunEnv) -> anyhow::Result<()> {
    let kafka = &env.settings().kafka;
    let unknown = CouponId::new(CouponId::MAX)?;
    let request = couponrush_testkit::issue_request(unknown, "dead-letter-user")?;
    couponrush_testkit::Preload::prepare(kafka, &kafka.topic, &[request])
        .await?
        .send()
        .await?;
    Ok(())
}

/// How many answers had each HTTP status (`error` for no answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers(pub BTreeMap<String, u32>);

impl Answers {
    fn count(&mut self, answer: String) {
        *self.0.entry(answer).or_default() += 1;
    }

    /// Answers `202 Accepted` (QUEUED): accepted, waiting for the consumer.
    pub fn accepted(&self) -> u32 {
        self.0.get("202").copied().unwrap_or_default()
    }
}

impl fmt::Display for Answers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{n}x {k}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// Users of one coupon event, each named `<prefix>-<n>` with a fresh n.
#[derive(Debug, Clone)]
pub struct Users {
    client: reqwest::Client,
    url: String,
    prefix: String,
    next: Arc<AtomicU32>,
}

impl Users {
    pub fn new(base_url: &str, coupon: CouponId, prefix: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            url: format!("{base_url}/coupons/{coupon}/issue"),
            prefix: prefix.to_owned(),
            next: Arc::default(),
        })
    }

    /// One new user asks for the coupon; the answer's status (`error` for none).
    async fn take_part(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .client
            .post(&self.url)
            .header("userId", format!("{}-{n}", self.prefix))
            .send()
            .await;
        match answer {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "error".to_owned(),
        }
    }

    /// `count` new users at once, `concurrency` in flight; their answers.
    pub async fn burst(&self, count: u32, concurrency: u32) -> Answers {
        let mut workers = tokio::task::JoinSet::new();
        let left = Arc::new(AtomicU32::new(count));
        for _ in 0..concurrency.max(1) {
            let users = self.clone();
            let left = Arc::clone(&left);
            workers.spawn(async move {
                let mut answers = Answers::default();
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    answers.count(users.take_part().await);
                }
                answers
            });
        }
        let mut all = Answers::default();
        while let Some(joined) = workers.join_next().await {
            for (answer, n) in joined.map(|a| a.0).unwrap_or_default() {
                *all.0.entry(answer).or_default() += n;
            }
        }
        all
    }

    /// A new user every `every` until the trickle is stopped.
    pub fn trickle(&self, every: Duration) -> Trickle {
        let answers = Arc::new(std::sync::Mutex::new(Answers::default()));
        let users = self.clone();
        let counted = Arc::clone(&answers);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let answer = users.take_part().await;
                if let Ok(mut answers) = counted.lock() {
                    answers.count(answer);
                }
            }
        });
        Trickle { answers, task }
    }
}

/// A running trickle of users; stopped when dropped.
#[derive(Debug)]
pub struct Trickle {
    answers: Arc<std::sync::Mutex<Answers>>,
    task: JoinHandle<()>,
}

impl Trickle {
    /// The answers so far.
    pub fn answers(&self) -> Answers {
        self.answers
            .lock()
            .map(|answers| answers.clone())
            .unwrap_or_default()
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
