//! A local stand-in for the services the example runbooks call.
//!
//! The end-to-end tests run the real `runbook` binary against this server
//! instead of a real platform: it answers the endpoints of the seed scenarios
//! (capsules, the ledger, the resolver and DNS, the ledger service's alert
//! endpoints, a fault-injection API for chaos drills, feature flags),
//! records every request before answering it, and lets a test switch its
//! answers (a service that is down, a missing secret, a reconciliation that
//! never succeeds) through one [`State`].
//!
//! ```
//! use testkit::{Health, StandIn};
//!
//! let service = StandIn::start();                 // 127.0.0.1, a free port
//! assert!(service.url().starts_with("http://127.0.0.1:"));
//! service.set(|state| state.health = Health::Down);
//! assert!(service.requests().is_empty());
//! drop(service);                                  // stops the server
//! ```
//!
//! The server runs on its own tokio runtime in a background thread, so
//! blocking tests (and the blocking `runbook` child process they start) can
//! use it without a runtime of their own.

mod anchor;
mod recorded;
mod routes;
mod stand_in;
mod state;

pub use anchor::{InvalidTimestamp, anchor_hash, canonical_json, transactions_since};
pub use recorded::Recorded;
pub use stand_in::StandIn;
pub use state::{Capsule, Dns, Fault, FaultEffect, FlagWrite, Health, NoPop, Pop, Recovering, State, Transaction};
