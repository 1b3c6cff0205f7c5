//! What a smoke run reports: per step its name, whether it passed, how long it took and what
//! it saw; as one line per step (text) or one JSON document (`--output json`).

use std::fmt;
use std::time::Instant;

use couponrush_domain::CouponId;
use serde::Serialize;

use super::plan::Plan;

#[derive(Debug, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    pub duration_ms: u128,
    /// What it saw: on failure the URL and the answer (status and body excerpt) or the error.
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Exit status 0: every step passed.
    pub ok: bool,
    /// The step that failed, if one did (the steps after it did not run).
    pub failed_step: Option<&'static str>,
    pub run: String,
    pub api_url: String,
    pub coupon_id: Option<CouponId>,
    pub users: Vec<String>,
    pub steps: Vec<Step>,
}

impl Report {
    pub fn new(plan: &Plan) -> Self {
        Self {
            ok: true,
            failed_step: None,
            run: plan.run.clone(),
            api_url: plan.api.to_string(),
            coupon_id: None,
            users: plan.users(),
            steps: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.ok
    }

    /// Runs one step and records it: its value when it passed, `None` when it failed.
    pub async fn step<T>(
        &mut self,
        name: &'static str,
        work: impl Future<Output = Result<(T, String), String>>,
    ) -> Option<T> {
        let started = Instant::now();
        let outcome = work.await;
        let duration_ms = started.elapsed().as_millis();
        let (value, ok, detail) = match outcome {
            Ok((value, detail)) => {
                tracing::info!(step = name, duration_ms, %detail, "smoke step passed");
                (Some(value), true, detail)
            }
            Err(detail) => {
                tracing::error!(step = name, duration_ms, %detail, "smoke step FAILED");
                self.ok = false;
                self.failed_step = Some(name);
                (None, false, detail)
            }
        };
        self.steps.push(Step {
            name,
            ok,
            duration_ms,
            detail,
        });
        value
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for step in &self.steps {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(
                f,
                "{:<4} {:<15} {:>6} ms  {}",
                if step.ok { "ok" } else { "FAIL" },
                step.name,
                step.duration_ms,
                step.detail
            )?;
        }
        Ok(())
    }
}
