//! Redis adapter: the per-coupon keys and the Lua scripts that make each decision atomic.
//!
//! All keys of one coupon share the hash tag `{<coupon id>}`, so every script touches a single
//! slot and runs unchanged on Redis Cluster (`redis.mode = cluster`, see `connection.rs`; the
//! `slots` tests prove it for every call the crate builds).

mod client;
mod connection;
mod error;
mod keys;
mod mark_issued;
mod repair;
mod reserve_call;
mod script;
#[cfg(test)]
mod slots;
mod sold_out;
mod state;
mod store;
mod views;

pub use client::{client, cluster_client};
pub use connection::{RedisConnection, connect, connect_each_master};
pub use error::CacheError;
pub use keys::KeySpace;
pub use repair::{Rebuilt, Restored};
pub use reserve_call::{RESERVE_LUA, ReserveCall};
pub use sold_out::{CopyRead, SoldOutCopy};
pub use state::epoch_ms;
pub use store::{LimitCheck, LoadOutcome, ReservationStore};
pub use views::{CouponCounters, StockSnapshot, UserView};
