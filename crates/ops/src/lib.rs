//! What operators see of every couponrush binary, written once and used by all of them:
//!
//! - [`startup`]: each dependency probed within `startup.probe_timeout_ms` before anything
//!   else; the first that does not answer ends start-up with one error naming it and (through
//!   its cause) its address. The incident's consumer ran for 45 minutes against a broker that
//!   was never there.
//! - [`readiness`]: the state of each check readiness depends on, and readiness as a whole,
//!   each logged once per change of state (ERROR when lost, with the reason; INFO when back),
//!   never once per check.
//! - [`health`]: the `/health/live`, `/health/ready` and `/metrics` handlers, answering the same
//!   way in every binary; [`ops_port`] serves just those on a port of their own.
//! - [`backoff`]: the doubling wait between the attempts of every retry loop.

pub mod backoff;
pub mod health;
pub mod ops_port;
pub mod readiness;
pub mod startup;

pub use backoff::Backoff;
pub use health::HealthReport;
pub use ops_port::{OpsPort, OpsPortError};
pub use readiness::{Check, ReadinessLog};
pub use startup::{Dependency, StartupError, StartupProbes};
