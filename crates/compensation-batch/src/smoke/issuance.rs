//! `issue` and `issued`: real issuance requests against the smoke coupon, followed to the
//! status endpoint and to MySQL.

use std::collections::BTreeMap;
use std::time::Instant;

use couponrush_config::Settings;
use couponrush_domain::{CouponId, UserId};
use couponrush_storage::{Database, IssuanceStore};
use serde_json::Value;

use super::coupon::smoke_coupon;
use super::http::{causes, client, endpoint, send};
use super::plan::Plan;
use crate::connect;

/// What `issue` accepted: the users `issued` follows.
#[derive(Debug)]
pub struct Issued {
    pub coupon: CouponId,
    pub users: Vec<UserId>,
    db: Database,
    client: reqwest::Client,
}

/// One issuance per user of this run against the smoke coupon; each must answer 202
/// `QUEUED` (the broker acknowledged it).
pub async fn issue(plan: &Plan, settings: &Settings) -> Result<(Issued, String), String> {
    let db = connect::mysql(settings)
        .await
        .map_err(|error| format!("MySQL at {}: {error:#}", settings.mysql.address()))?;
    let client = client(plan.http_timeout, None)?;
    let (coupon, found) = smoke_coupon(plan, &db, &client).await?;
    let url = endpoint(&plan.api, &format!("/coupons/{coupon}/issue"))?;
    let mut users = Vec::new();
    for user in plan.users() {
        let what = format!("POST {url} (userId {user})");
        let user = UserId::parse(&user).map_err(|error| format!("{what}: {error}"))?;
        let seen = send(as_user(client.post(url.clone()), plan, &user), &what).await?;
        let status: Option<String> = serde_json::from_str::<Value>(&seen.body)
            .ok()
            .and_then(|body| body["status"].as_str().map(str::to_owned));
        if seen.status != 202 || status.as_deref() != Some("QUEUED") {
            return Err(format!(
                "{what} {} (expected 202 QUEUED; {} of {} queued before it)",
                seen.describe(),
                users.len(),
                plan.count
            ));
        }
        users.push(user);
    }
    let detail = format!(
        "{} of {} answered 202 QUEUED on {found}",
        users.len(),
        plan.count
    );
    Ok((
        Issued {
            coupon,
            users,
            db,
            client,
        },
        detail,
    ))
}

/// Within the deadline, every user's status reads `ISSUED` and their row is in MySQL.
pub async fn issued(plan: &Plan, issued: &Issued) -> Result<((), String), String> {
    let started = Instant::now();
    let issuances = IssuanceStore::new(issued.db.clone());
    // What each user not confirmed yet was last seen as.
    let mut waiting: BTreeMap<&UserId, String> = issued
        .users
        .iter()
        .map(|user| (user, "not looked at yet".to_owned()))
        .collect();
    loop {
        let mut confirmed = Vec::new();
        for (user, last_seen) in &mut waiting {
            // Each look is bounded by the HTTP timeout; many slow ones must not stretch the
            // deadline.
            if started.elapsed() >= plan.deadline {
                break;
            }
            match look(plan, issued, &issuances, user).await {
                Ok(()) => confirmed.push(*user),
                Err(seen) => *last_seen = seen,
            }
        }
        for user in confirmed {
            waiting.remove(user);
        }
        if waiting.is_empty() {
            return Ok((
                (),
                format!(
                    "{} of {} ISSUED and in MySQL after {} ms",
                    issued.users.len(),
                    issued.users.len(),
                    started.elapsed().as_millis()
                ),
            ));
        }
        if started.elapsed() >= plan.deadline {
            let seen: Vec<String> = waiting
                .iter()
                .map(|(user, seen)| format!("{user}: {seen}"))
                .collect();
            return Err(format!(
                "{} of {} not ISSUED in MySQL within {} ms: {}",
                waiting.len(),
                issued.users.len(),
                plan.deadline.as_millis(),
                seen.join("; ")
            ));
        }
        tokio::time::sleep(plan.poll_interval).await;
    }
}

/// `Ok` once `user` reads ISSUED on the status endpoint and has a row in MySQL; else what was
/// seen instead.
async fn look(
    plan: &Plan,
    issued: &Issued,
    issuances: &IssuanceStore,
    user: &UserId,
) -> Result<(), String> {
    let url = endpoint(
        &plan.api,
        &format!("/coupons/{}/issuances/{user}", issued.coupon),
    )?;
    let what = format!("GET {url}");
    let seen = send(as_user(issued.client.get(url.clone()), plan, user), &what).await?;
    let status = serde_json::from_str::<Value>(&seen.body)
        .ok()
        .and_then(|body| body["status"].as_str().map(str::to_owned));
    if seen.status != 200 || status.as_deref() != Some("ISSUED") {
        return Err(format!("{what} {}", seen.describe()));
    }
    match issuances.find(issued.coupon, user).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!(
            "{what} answered ISSUED but MySQL at {} has no coupon_user row",
            issued.db.address()
        )),
        Err(error) => Err(format!(
            "MySQL at {}: {}",
            issued.db.address(),
            causes(&error)
        )),
    }
}

/// A request made for `user`: the user header names them and, when an admin token is set, it
/// is the bearer. The admin token is what lets the smoke test act for its users in every
/// `auth.mode` (a gateway-header deployment serves only its gateways; a jwt one wants a token
/// the smoke test cannot mint), and the status endpoint answers only its own user or an
/// operator.
fn as_user(
    request: reqwest::RequestBuilder,
    plan: &Plan,
    user: &UserId,
) -> reqwest::RequestBuilder {
    let request = request.header("userId", user.as_str());
    if plan.admin_token.is_empty() {
        request
    } else {
        request.bearer_auth(plan.admin_token.expose())
    }
}
