//! `compensate`: grant a compensation coupon, once each, to everyone who took part in a source
//! coupon's event during a window and holds none of its coupons.
//!
//! The incident compensated 35,500 people with a hand-written SQL script. This job is safe to
//! re-run, to run twice at once and to resume after a kill: the exactly-once guarantee lives in
//! MySQL (see `CompensationStore`), so the job itself keeps no state.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;
use couponrush_config::Settings;
use couponrush_domain::{CompensationSource, CouponId, CouponSpec};
use couponrush_ops::Backoff;
use couponrush_storage::{
    CompensationCoupon, CompensationStore, CompensationWindow, CouponStore, StorageError,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::connect;
use crate::output::OutputArgs;
use crate::progress::Progress;

/// Attempts per batch through transient MySQL failures (deadlock, restart) before giving up.
const ATTEMPTS: u32 = 5;
/// Between those attempts: 400 ms, 800 ms, 1.6 s, 3.2 s.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(400), Duration::from_secs(5));

#[derive(Debug, clap::Args)]
pub struct CompensateArgs {
    /// The coupon whose event went wrong.
    #[arg(long, value_name = "ID")]
    pub source_coupon: CouponId,
    /// Start of the window, inclusive (RFC 3339, e.g. 2025-12-25T10:00:00+09:00).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: OffsetDateTime,
    /// End of the window, exclusive (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: OffsetDateTime,
    /// Grant this existing coupon.
    #[arg(long, value_name = "ID", required_unless_present = "name",
          conflicts_with_all = ["name", "discount", "expiry_days"])]
    pub coupon: Option<CouponId>,
    /// Create the compensation coupon with this name on the first run (a re-run with the same
    /// name, discount and expiry continues with it).
    #[arg(long, requires_all = ["discount", "expiry_days"])]
    pub name: Option<String>,
    /// Discount of the new compensation coupon, in the smallest currency unit.
    #[arg(long, value_name = "AMOUNT", requires = "name")]
    pub discount: Option<u32>,
    /// Days a granted coupon stays valid.
    #[arg(long, value_name = "DAYS", requires = "name")]
    pub expiry_days: Option<u16>,
    /// Count who would be compensated; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Users granted per MySQL transaction.
    #[arg(long, default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub batch_size: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    Completed,
    DryRun,
    Failed,
}

#[derive(Debug, Serialize)]
struct Summary {
    status: Status,
    source_coupon_id: CouponId,
    #[serde(with = "time::serde::rfc3339")]
    window_from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    window_until: OffsetDateTime,
    /// `None` in a dry run that would create it.
    compensation_coupon_id: Option<CouponId>,
    compensation_coupon_created: bool,
    /// Took part in the window and hold no coupon of the source.
    eligible: u64,
    /// Of those, already holding the compensation coupon when this run started.
    already_compensated: u64,
    /// Granted by this run (0 in a dry run).
    issued_now: u64,
    /// In a dry run: how many this run would grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    would_issue: Option<u64>,
    /// Granted meanwhile by another run of the same compensation.
    issued_by_another_run: u64,
    /// The compensation coupon's total after this run: every grant it ever made.
    compensation_coupon_total: Option<u32>,
    elapsed_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let coupon = self
            .compensation_coupon_id
            .map_or_else(|| "(to be created)".to_owned(), |id| id.to_string());
        writeln!(f, "compensate: {:?}", self.status)?;
        writeln!(
            f,
            "  source coupon            {} ({} .. {})",
            self.source_coupon_id, self.window_from, self.window_until
        )?;
        writeln!(
            f,
            "  compensation coupon      {coupon}{}",
            if self.compensation_coupon_created {
                " (created by this run)"
            } else {
                ""
            }
        )?;
        writeln!(f, "  eligible                 {}", self.eligible)?;
        writeln!(f, "  already compensated      {}", self.already_compensated)?;
        match self.would_issue {
            Some(n) => writeln!(f, "  would issue              {n}")?,
            None => writeln!(f, "  issued now               {}", self.issued_now)?,
        }
        if self.issued_by_another_run > 0 {
            writeln!(
                f,
                "  issued by another run    {}",
                self.issued_by_another_run
            )?;
        }
        if let Some(total) = self.compensation_coupon_total {
            writeln!(f, "  coupon total             {total}")?;
        }
        write!(f, "  time taken               {} ms", self.elapsed_ms)?;
        if let Some(error) = &self.error {
            write!(f, "\n  error                    {error}")?;
        }
        Ok(())
    }
}

impl CompensateArgs {
    fn window(&self) -> anyhow::Result<CompensationWindow> {
        anyhow::ensure!(
            self.until > self.from,
            "--until ({}) must be after --from ({})",
            self.until,
            self.from
        );
        Ok(CompensationWindow {
            from: self.from,
            until: self.until,
        })
    }

    /// The coupon to grant, validated like any coupon an admin creates.
    fn wanted(&self) -> anyhow::Result<CompensationCoupon> {
        if let Some(id) = self.coupon {
            return Ok(CompensationCoupon::Existing(id));
        }
        let (Some(name), Some(discount_amount), Some(expiry_days)) =
            (&self.name, self.discount, self.expiry_days)
        else {
            anyhow::bail!("give --coupon ID, or --name, --discount and --expiry-days");
        };
        CouponSpec {
            name: name.clone(),
            discount_amount,
            total_quantity: 1,
            issue_starts_at: self.from,
            issue_ends_at: self.until,
            expiry_days,
            rate_limit: Default::default(),
        }
        .validate()
        .context("invalid compensation coupon")?;
        Ok(CompensationCoupon::New {
            name: name.clone(),
            discount_amount,
            expiry_days,
        })
    }
}

pub async fn run(args: &CompensateArgs, settings: &Settings) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let window = args.window()?;
    let wanted = args.wanted()?;
    let db = connect::mysql(settings).await?;
    let store = CompensationStore::new(db.clone()).with_outbox(settings.outbox.enabled);
    let mut summary = Summary {
        status: if args.dry_run {
            Status::DryRun
        } else {
            Status::Completed
        },
        source_coupon_id: args.source_coupon,
        window_from: window.from,
        window_until: window.until,
        compensation_coupon_id: None,
        compensation_coupon_created: false,
        eligible: 0,
        already_compensated: 0,
        issued_now: 0,
        would_issue: None,
        issued_by_another_run: 0,
        compensation_coupon_total: None,
        elapsed_ms: 0,
        error: None,
    };

    let result = if args.dry_run {
        dry_run(args, &store, &db, window, &wanted, &mut summary).await
    } else {
        grant_all(args, &store, window, &wanted, &mut summary).await
    };
    if let Some(id) = summary.compensation_coupon_id
        && let Ok(Some(coupon)) = CouponStore::new(db).find(id).await
    {
        summary.compensation_coupon_total = Some(coupon.spec.total_quantity);
    }
    summary.elapsed_ms = started.elapsed().as_millis();
    if let Err(error) = &result {
        summary.status = Status::Failed;
        summary.error = Some(format!("{error:#}"));
    }
    let json = args.output.emit(&summary)?;
    result.with_context(|| {
        format!(
            "compensation stopped after issuing {} coupons; run the same command again to finish",
            summary.issued_now
        )
    })?;
    Ok(json)
}

async fn dry_run(
    args: &CompensateArgs,
    store: &CompensationStore,
    db: &couponrush_storage::Database,
    window: CompensationWindow,
    wanted: &CompensationCoupon,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        CouponStore::new(db.clone())
            .find(args.source_coupon)
            .await?
            .is_some(),
        "source coupon {} does not exist",
        args.source_coupon
    );
    let granted = match (store.find(args.source_coupon, window).await?, wanted) {
        (Some(existing), _) => Some(existing.id),
        (None, CompensationCoupon::Existing(id)) => Some(*id),
        (None, CompensationCoupon::New { .. }) => None,
    };
    summary.compensation_coupon_id = granted;
    let counts = store.counts(args.source_coupon, window, granted).await?;
    summary.eligible = counts.eligible;
    summary.already_compensated = counts.already_compensated;
    summary.would_issue = Some(counts.eligible - counts.already_compensated);
    Ok(())
}

async fn grant_all(
    args: &CompensateArgs,
    store: &CompensationStore,
    window: CompensationWindow,
    wanted: &CompensationCoupon,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let resolved = store
        .resolve(args.source_coupon, window, wanted, now)
        .await??;
    let granted = resolved.coupon.id;
    summary.compensation_coupon_id = Some(granted);
    summary.compensation_coupon_created = resolved.created;
    let counts = store
        .counts(args.source_coupon, window, Some(granted))
        .await?;
    summary.eligible = counts.eligible;
    summary.already_compensated = counts.already_compensated;
    tracing::info!(
        source = %args.source_coupon,
        compensation_coupon = %granted,
        eligible = counts.eligible,
        already_compensated = counts.already_compensated,
        "compensating"
    );

    let source = CompensationSource {
        source_coupon_id: args.source_coupon,
        window_starts_at: window.from,
        window_ends_at: window.until,
    };
    let mut progress = Progress::new("compensate", counts.eligible - counts.already_compensated);
    let mut after = String::new();
    loop {
        let page = store
            .next_page(args.source_coupon, window, granted, &after, args.batch_size)
            .await?;
        let Some(last) = page.last() else { break };
        after.clone_from(last);
        let inserted = grant_with_retry(store, granted, source, &page).await?;
        summary.issued_now += inserted;
        summary.issued_by_another_run += u64::try_from(page.len()).unwrap_or(0) - inserted;
        progress.advance(u64::try_from(page.len()).unwrap_or(0));
    }
    progress.finish();
    tracing::info!(
        compensation_coupon = %granted,
        issued_now = summary.issued_now,
        "compensation complete"
    );
    Ok(())
}

/// One batch, retried through transient failures: the batch is one transaction, so a retry
/// after a failure cannot double-grant.
async fn grant_with_retry(
    store: &CompensationStore,
    granted: CouponId,
    source: CompensationSource,
    users: &[String],
) -> Result<u64, StorageError> {
    let mut attempt = 1;
    let mut backoff = BACKOFF;
    loop {
        match store
            .grant(granted, source, users, OffsetDateTime::now_utc())
            .await
        {
            Err(error) if error.is_transient() && attempt < ATTEMPTS => {
                let backoff = backoff.next_wait();
                tracing::warn!(%error, attempt, ?backoff, "grant failed; retrying");
                tokio::time::sleep(backoff).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// An RFC 3339 time from the command line.
fn parse_time(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2025-12-25T10:00:00+09:00"))
}
