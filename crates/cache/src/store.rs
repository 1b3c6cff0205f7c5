use std::sync::Arc;
use std::time::Duration;

use couponrush_config::RedisSettings;
use couponrush_domain::{
    CouponId, CouponSpec, LimitedBy, RateLimits, RequestId, Reservation, UserId,
};
use deadpool_redis::redis::{self, AsyncCommands};
use time::OffsetDateTime;

use crate::connection::{Pool, RedisConnection};
use crate::error::CacheError;
use crate::keys::KeySpace;
use crate::reserve_call::{RESERVE_LUA, ReserveCall, limit_fields, limits_expire_ms};
use crate::script::Lua;
use crate::state::{decode_state, epoch_ms};

/// Whether a warm-up loaded the coupon or found it already live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded { stock: u64 },
    AlreadyLoaded { stock: u64 },
}

/// The abuse limits a reservation checks first: who the client is, and the configured limits
/// (the event's own, kept in Redis, override them key by key).
#[derive(Debug, Clone, Copy)]
pub struct LimitCheck<'a> {
    /// The client's address (IPv4, or an IPv6 /64), as the API derived it.
    pub client: &'a str,
    pub defaults: RateLimits,
}

/// How long a voided request id is remembered: far longer than any stall during which its
/// reserve call could still be waiting to run.
pub const VOID_MEMORY: Duration = Duration::from_secs(3600);

pub(crate) struct Scripts {
    reserve: Lua,
    load: Lua,
    release: Lua,
    pub(crate) mark_issued: Lua,
    pub(crate) restore: Lua,
}

/// Reservations in Redis: the API's atomic decision and the consumer's confirmation.
#[derive(Clone)]
pub struct ReservationStore {
    pool: Pool,
    settings: RedisSettings,
    pub(crate) keys: KeySpace,
    address: String,
    timeout: Duration,
    /// `redis.min_replica_acks` and its timeout; `None`: a reservation waits for no replica.
    replica_acks: Option<(u32, Duration)>,
    /// The lease of the caller's sold-out gate; zero: the caller keeps none.
    gate_lease: Duration,
    pub(crate) scripts: Arc<Scripts>,
    shared: Arc<std::sync::Mutex<Option<RedisConnection>>>,
}

impl std::fmt::Debug for ReservationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservationStore")
            .field("address", &self.address)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl ReservationStore {
    /// Builds the pool; connects lazily. Call [`Self::probe`] to fail fast at start-up.
    pub fn new(settings: &RedisSettings) -> Result<Self, CacheError> {
        let address = settings
            .address()
            .unwrap_or_else(|| format!("<invalid {}>", settings.urls_key()));
        Ok(Self {
            pool: Pool::new(settings)?,
            settings: settings.clone(),
            keys: KeySpace::new(settings.key_prefix.clone()),
            address,
            timeout: settings.timeout(),
            replica_acks: settings.replica_acks(),
            gate_lease: Duration::ZERO,
            shared: Arc::new(std::sync::Mutex::new(None)),
            scripts: Arc::new(Scripts {
                reserve: Lua::new(RESERVE_LUA, settings.mode),
                load: Lua::new(include_str!("lua/load.lua"), settings.mode),
                release: Lua::new(include_str!("lua/release.lua"), settings.mode),
                mark_issued: Lua::new(include_str!("lua/mark_issued.lua"), settings.mode),
                restore: Lua::new(include_str!("lua/restore.lua"), settings.mode),
            }),
        })
    }

    /// The same store with a connection of its own, opened on first use by the runtime of
    /// the thread that uses it. Each actix worker takes one: a multiplexed connection's driver
    /// task runs where it was opened, so sharing the start-up one made every request wake
    /// another thread twice (send, then reply).
    pub fn with_own_connection(&self) -> Result<Self, CacheError> {
        Ok(Self {
            pool: Pool::new(&self.settings)?,
            shared: Arc::new(std::sync::Mutex::new(None)),
            ..self.clone()
        })
    }

    /// The same store for a caller that answers SOLD_OUT itself for `lease` after hearing it
    /// ([`ReserveCall::gated`]); zero: it never does.
    pub fn with_sold_out_lease(mut self, lease: Duration) -> Self {
        self.gate_lease = lease;
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// Runs `op` on a pooled connection within the configured timeout, so a Redis that stops
    /// answering yields an error instead of a hung request.
    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        F: AsyncFnOnce(&mut RedisConnection) -> Result<T, redis::RedisError>,
    {
        self.run_within(self.timeout, op).await
    }

    async fn run_within<T, F>(&self, timeout: Duration, op: F) -> Result<T, CacheError>
    where
        F: AsyncFnOnce(&mut RedisConnection) -> Result<T, redis::RedisError>,
    {
        let work = async {
            let mut conn = self.connection().await?;
            Ok::<_, CacheError>(op(&mut conn).await?)
        };
        let result = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| CacheError::Timeout {
                address: self.address.clone(),
                timeout_ms: timeout.as_millis(),
            })
            .and_then(|r| r);
        if let Err(CacheError::Timeout { .. } | CacheError::Unavailable { .. }) = &result {
            self.forget_connection();
        } else if let Err(CacheError::Command(e)) = &result
            && (e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
        {
            self.forget_connection();
        }
        result
    }

    /// The shared multiplexed connection: one connection carries every concurrent command
    /// (pipelined by the driver), so a request costs one round trip. Taking a connection from
    /// the pool for each command would add the pool's recycle check (`UNWATCH` + `PING`), a
    /// second round trip per request. The pool creates (and re-creates) the shared one; in
    /// cluster mode it is a cluster connection, multiplexed per node likewise.
    async fn connection(&self) -> Result<RedisConnection, CacheError> {
        if let Some(conn) = self.shared.lock().ok().and_then(|c| c.clone()) {
            return Ok(conn);
        }
        let conn = self
            .pool
            .get()
            .await
            .map_err(|reason| CacheError::Unavailable {
                address: self.address.clone(),
                reason,
            })?;
        if let Ok(mut shared) = self.shared.lock() {
            *shared = Some(conn.clone());
        }
        Ok(conn)
    }

    /// Drops the shared connection after a failure; the next command opens a new one.
    fn forget_connection(&self) {
        if let Ok(mut shared) = self.shared.lock() {
            *shared = None;
        }
    }

    /// `PING` within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<(), CacheError> {
        self.run_within(timeout, async |conn| {
            redis::cmd("PING").query_async::<String>(conn).await
        })
        .await
        .map(drop)
    }

    /// Loads a coupon's stock and issuance window. Safe to repeat: a coupon already loaded
    /// keeps its live counters.
    pub async fn load(&self, id: CouponId, spec: &CouponSpec) -> Result<LoadOutcome, CacheError> {
        let [meta, stock, limits] = self.keys.load_keys(id);
        let reply: Vec<String> = self
            .run(async |conn| {
                self.scripts
                    .load
                    .key(&meta)
                    .key(&stock)
                    .key(&limits)
                    .arg(spec.total_quantity)
                    .arg(epoch_ms(spec.issue_starts_at))
                    .arg(epoch_ms(spec.issue_ends_at))
                    .arg(spec.expiry_days)
                    .arg(&limit_fields(spec)[..])
                    .arg(limits_expire_ms(spec))
                    .invoke_async(conn)
                    .await
            })
            .await?;
        let stock = reply
            .get(1)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| CacheError::Corrupt(format!("load reply {reply:?}")))?;
        match reply.first().map(String::as_str) {
            Some("LOADED") => Ok(LoadOutcome::Loaded { stock }),
            Some("EXISTING") => Ok(LoadOutcome::AlreadyLoaded { stock }),
            _ => Err(CacheError::Corrupt(format!("load reply {reply:?}"))),
        }
    }

    /// The atomic reservation: decides the request and, if accepted, takes one unit of stock
    /// and records the user as pending under `request_id`.
    ///
    /// `hold_for` is the longest the caller may take to decide the reservation's publish: a
    /// hold older than that is abandoned and no longer keeps the coupon from selling out.
    /// With `limit`, the user's and the client's abuse limits are checked (and counted) first,
    /// in the same call: a request over one takes nothing.
    ///
    /// With `redis.min_replica_acks`, an accepted reservation is also waited on until that many
    /// replicas hold it; short of them the answer is [`CacheError::NotReplicated`], and the
    /// reservation stands until the caller gives it back ([`Self::release`]).
    pub async fn reserve(
        &self,
        id: CouponId,
        user: &UserId,
        request_id: RequestId,
        now: OffsetDateTime,
        hold_for: Duration,
        limit: Option<LimitCheck<'_>>,
    ) -> Result<Reservation, CacheError> {
        let mut call = ReserveCall::new(
            &self.keys,
            id,
            user.as_str(),
            &request_id.to_string(),
            request_id,
            now,
            hold_for,
        );
        if !self.gate_lease.is_zero() {
            call = call.gated(self.gate_lease);
        }
        if let Some(limit) = limit {
            call = call.limited(&self.keys, id, limit.client, limit.defaults);
        }
        let (reply, acked): (Vec<String>, Option<u32>) = self
            .run_within(self.settings.response_timeout(), async |conn| {
                let mut invocation = self.scripts.reserve.prepare_invoke();
                for key in &call.keys {
                    invocation.key(key);
                }
                for arg in &call.args {
                    invocation.arg(arg);
                }
                let reply: Vec<String> = invocation.invoke_async(conn).await?;
                // On the connection that made the reservation: WAIT counts its writes.
                let acked = match self.replica_acks {
                    Some((wanted, within)) if reply.first().is_some_and(|r| r == "ACCEPTED") => {
                        let within_ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
                        // Any key of the call names the coupon's slot (cluster: its master).
                        let slot_key = call.keys.first().map_or("", String::as_str);
                        Some(conn.wait_for_replicas(slot_key, wanted, within_ms).await?)
                    }
                    _ => None,
                };
                Ok((reply, acked))
            })
            .await?;
        if let (Some(acked), Some((wanted, _))) = (acked, self.replica_acks)
            && acked < wanted
        {
            // Not durable: a failover now could lose it while the user holds a 202.
            return Err(CacheError::NotReplicated {
                address: self.address.clone(),
                acked,
                wanted,
            });
        }
        let corrupt = || CacheError::Corrupt(format!("reserve reply {reply:?}"));
        let detail = reply.get(1);
        Ok(match reply.first().map(String::as_str) {
            Some("ACCEPTED") => Reservation::Accepted {
                remaining: detail.and_then(|s| s.parse().ok()).ok_or_else(corrupt)?,
            },
            Some("DUPLICATE") => Reservation::AlreadyRequested(
                detail.and_then(|s| decode_state(s)).ok_or_else(corrupt)?,
            ),
            Some("SOLD_OUT") => Reservation::SoldOut {
                generation: detail.and_then(|s| s.parse().ok()).ok_or_else(corrupt)?,
            },
            Some("HELD") => Reservation::Held,
            Some("VOID") => Reservation::Void,
            Some("NOT_OPEN") => Reservation::NotOpen,
            Some("CLOSED") => Reservation::Closed,
            Some("UNKNOWN") => Reservation::UnknownCoupon,
            Some("RATE_LIMITED") => Reservation::RateLimited {
                by: match detail.map(String::as_str) {
                    Some("user") => LimitedBy::User,
                    Some("client") => LimitedBy::Client,
                    _ => return Err(corrupt()),
                },
                retry_after_ms: reply
                    .get(2)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(corrupt)?,
            },
            _ => return Err(corrupt()),
        })
    }

    /// Undoes a reservation whose publish certainly failed, if the user's state is still this
    /// pending request. Returns whether stock was given back.
    pub async fn release(
        &self,
        id: CouponId,
        user: &UserId,
        request_id: RequestId,
    ) -> Result<bool, CacheError> {
        self.undo(id, user, request_id, None).await
    }

    /// Gives up a request whose reserve call got no answer: whether Redis ran it already or
    /// runs it later, it ends up holding nothing (a marker kept [`VOID_MEMORY`] makes a late
    /// run take nothing). Returns whether stock was given back now.
    pub async fn void(
        &self,
        id: CouponId,
        user: &UserId,
        request_id: RequestId,
    ) -> Result<bool, CacheError> {
        self.undo(id, user, request_id, Some(VOID_MEMORY)).await
    }

    async fn undo(
        &self,
        id: CouponId,
        user: &UserId,
        request_id: RequestId,
        void_for: Option<Duration>,
    ) -> Result<bool, CacheError> {
        let request = request_id.to_string();
        let [stock, participants, holds, void, meta] = self.keys.release_keys(id, &request);
        let released: i64 = self
            .run(async |conn| {
                self.scripts
                    .release
                    .key(&stock)
                    .key(&participants)
                    .key(&holds)
                    .key(&void)
                    .key(&meta)
                    .arg(user.as_str())
                    .arg(&request)
                    .arg(if void_for.is_some() { "1" } else { "0" })
                    .arg(void_for.map_or(1, |d| d.as_secs().max(1)))
                    .arg(epoch_ms(OffsetDateTime::now_utc()))
                    .invoke_async(conn)
                    .await
            })
            .await?;
        Ok(released == 1)
    }

    /// The publishes of `requests` are decided (acknowledged, or to be resolved by publishing
    /// them again): their stock no longer counts as merely held. One `ZREM` for all of them.
    pub async fn settle(&self, id: CouponId, requests: &[RequestId]) -> Result<(), CacheError> {
        if requests.is_empty() {
            return Ok(());
        }
        let members: Vec<String> = requests.iter().map(ToString::to_string).collect();
        self.run(async |conn| conn.zrem::<_, _, i64>(self.keys.holds(id), &members).await)
            .await
            .map(drop)
    }
}
