//! The stand-in's answers: everything a test can switch lives in [`State`].
//!
//! The defaults describe a healthy service, so a test changes only what its
//! scenario breaks. Some fields are written by the service itself (the
//! capsules taken, the restores, the reconcile calls); a test reads them back
//! with [`StandIn::state`](crate::StandIn::state) and may also preset them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What the stand-in answers, and what it has been asked to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    // --- every endpoint ------------------------------------------------------
    /// Injected failures: a request whose path (without the query) is a key
    /// here is recorded and then answered with that status and
    /// `{"error": "injected failure"}`, whatever the endpoint would have said.
    /// Default: empty.
    pub failures: BTreeMap<String, u16>,

    // --- GET /health -----------------------------------------------------------
    /// How `GET /health` answers. Default: [`Health::Up`].
    pub health: Health,

    // --- capsules (scenario 1) -------------------------------------------------
    /// The key `POST /capsules/{id}/restore` expects in `x-api-key`.
    /// Default: `"test-api-key"`.
    pub api_key: String,
    /// The capsules that exist, oldest first. `POST /capsules` appends one.
    /// Default: empty.
    pub capsules: Vec<Capsule>,
    /// The ids restored by `POST /capsules/{id}/restore`, in order.
    /// Written by the service. Default: empty.
    pub capsule_restores: Vec<String>,

    // --- ledger (scenario 2) ---------------------------------------------------
    /// The ledger that `GET /ledger/export` returns and `POST /ledger/anchor`
    /// hashes; `POST /ledger/import` replaces it. Default: three transactions,
    /// `tx-1` at `2024-04-30T09:00:00Z`, `tx-2` at `2024-05-01T12:00:00Z`
    /// and `tx-3` at `2024-05-01T15:30:00Z`.
    pub transactions: Vec<Transaction>,
    /// The `at` of every `POST /ledger/snapshots/restore`, in order.
    /// Written by the service. Default: empty.
    pub snapshot_restores: Vec<String>,
    /// Whether a snapshot restore also drops the transactions at or after
    /// `at` from [`State::transactions`], as a real rollback would.
    /// Default: `false` (the ledger is left as it is, so a later anchor still
    /// hashes the transactions since `at`).
    pub restore_rolls_back: bool,
    /// How many `POST /ledger/import` calls succeeded. Written by the service.
    /// Default: 0.
    pub imports: u32,

    // --- resolver and DNS (scenario 3) -----------------------------------------
    /// The points of presence, in the order the resolver prefers them.
    /// Default: `eu-1` and `us-1`, both healthy, both served by this stand-in
    /// at `/pop/{name}`.
    pub pops: Vec<Pop>,
    /// How `POST /snrl/resolve` answers when no point of presence is healthy.
    /// Default: [`NoPop::Null`].
    pub no_pop: NoPop,
    /// How `GET /dns-query` answers. Default: one A record, `203.0.113.7`.
    pub dns: Dns,

    // --- ledger service alerts (scenario 5) ------------------------------------
    /// `chainOk` in `GET /verify`. Default: `true`.
    pub chain_ok: bool,
    /// `crossOk` in `GET /verify`; `POST /admin/reconcile` sets it back to
    /// `true` (see [`State::reconcile_after`]). Default: `true`.
    pub cross_ok: bool,
    /// The secret `POST /admin/reconcile` expects in `x-admin-secret`.
    /// Default: `"test-admin-secret"`.
    pub admin_secret: String,
    /// After how many authorized `POST /admin/reconcile` calls (counted in
    /// [`State::reconcile_calls`]) `crossOk` becomes `true`; `None` never.
    /// Default: `Some(1)`, the first call.
    pub reconcile_after: Option<u32>,
    /// How many authorized `POST /admin/reconcile` calls were made.
    /// Written by the service. Default: 0.
    pub reconcile_calls: u32,
    /// `block_age_s` in `GET /status`: seconds since the last block.
    /// `POST /restart` sets it to 0. Default: 3.
    pub block_age_s: u64,
    /// `queue` in `GET /status`: transactions waiting for a block. Default: 0.
    pub queue: u64,
    /// How many `POST /restart` calls were made. Written by the service.
    /// Default: 0.
    pub restarts: u32,

    // --- fault injection (scenario 6) ------------------------------------------
    /// The faults injected with `POST /chaos/faults` and not removed yet,
    /// oldest first. Each applies to every request whose path it matches
    /// (see [`Fault::applies_to`]), except the `/chaos` API itself. Written
    /// by the service; a test may preset one. Default: empty.
    pub faults: Vec<Fault>,
    /// Faults removed with `DELETE /chaos/faults/{id}` whose recovery window
    /// is not over: their target keeps failing until [`Recovering::until`].
    /// Written by the service. Default: empty.
    pub recovering: Vec<Recovering>,
    /// How many faults `POST /chaos/faults` injected; the next id is
    /// `fault-<n + 1>`. Written by the service. Default: 0.
    pub faults_injected: u32,
    /// The recovery window of a fault whose `POST /chaos/faults` gives no
    /// `recovery_ms`: how long its target keeps failing after the fault is
    /// removed, as a dependency that is slow to come back would. Default:
    /// zero (the target recovers at once).
    pub fault_recovery: Duration,

    // --- feature flags (the feature-flag failover example) ---------------------
    /// The feature flags and their values; a name that is not here is not a
    /// flag (404), so a typo cannot create one. `PUT /flags/{name}` changes
    /// one. Default: `checkout_v2` on, `search_beta` off.
    pub flags: BTreeMap<String, bool>,
    /// Every change `PUT /flags/{name}` made, oldest first. Written by the
    /// service. Default: empty.
    pub flag_writes: Vec<FlagWrite>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            failures: BTreeMap::new(),
            health: Health::Up,
            api_key: "test-api-key".to_owned(),
            capsules: Vec::new(),
            capsule_restores: Vec::new(),
            transactions: vec![
                Transaction::new("2024-04-30T09:00:00Z", "tx-1", 1250),
                Transaction::new("2024-05-01T12:00:00Z", "tx-2", -300),
                Transaction::new("2024-05-01T15:30:00Z", "tx-3", 4200),
            ],
            snapshot_restores: Vec::new(),
            restore_rolls_back: false,
            imports: 0,
            pops: vec![Pop::new("eu-1"), Pop::new("us-1")],
            no_pop: NoPop::Null,
            dns: Dns::Answer(vec!["203.0.113.7".to_owned()]),
            chain_ok: true,
            cross_ok: true,
            admin_secret: "test-admin-secret".to_owned(),
            reconcile_after: Some(1),
            reconcile_calls: 0,
            block_age_s: 3,
            queue: 0,
            restarts: 0,
            faults: Vec::new(),
            recovering: Vec::new(),
            faults_injected: 0,
            fault_recovery: Duration::ZERO,
            flags: BTreeMap::from([("checkout_v2".to_owned(), true), ("search_beta".to_owned(), false)]),
            flag_writes: Vec::new(),
        }
    }
}

/// How `GET /health` (of the service itself) answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// 200 `{"ok": true, "status": "up"}`.
    #[default]
    Up,
    /// 503 `{"ok": false, "status": "down"}`.
    Down,
    /// 500 `{"ok": false, "error": "internal error"}`.
    Error,
    /// 200 `{"ok": true, "status": "slow"}`, after waiting this long (other
    /// requests are answered meanwhile).
    Slow(Duration),
}

/// A capsule: a snapshot of the platform's state, taken with a memo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capsule {
    /// `cap-<n>`.
    pub id: String,
    pub memo: String,
}

/// One ledger transaction, as `GET /ledger/export` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// When it was recorded, an RFC 3339 timestamp.
    pub ts: String,
    pub id: String,
    /// In minor units (cents).
    pub amount: i64,
}

impl Transaction {
    pub fn new(ts: &str, id: &str, amount: i64) -> Self {
        Self {
            ts: ts.to_owned(),
            id: id.to_owned(),
            amount,
        }
    }
}

/// A point of presence the resolver can hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop {
    pub name: String,
    /// Whether the resolver hands it out and its `/health` answers 200.
    pub healthy: bool,
    /// Where it is; `None` means this stand-in at `/pop/{name}` (whose
    /// `GET /pop/{name}/health` answers per [`Pop::healthy`]). Set it to
    /// another stand-in's URL to make that one the point of presence.
    pub url: Option<String>,
}

impl Pop {
    /// A healthy point of presence served by this stand-in.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            healthy: true,
            url: None,
        }
    }
}

/// How `POST /snrl/resolve` answers when no point of presence is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoPop {
    /// 200 `{"domain": ..., "pop": null}`.
    #[default]
    Null,
    /// 503 `{"error": "no healthy point of presence", "pop": null}`.
    Unavailable,
}

/// How the DNS-over-HTTPS endpoint `GET /dns-query` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dns {
    /// 200 with `Status` 0 and one `Answer` entry per address.
    Answer(Vec<String>),
    /// 200 with `Status` 0 and no `Answer` (the name exists, no records yet).
    NoAnswer,
    /// 200 with `Status` 3 (NXDOMAIN) and no `Answer`.
    NxDomain,
    /// 200 with `Status` 2 (SERVFAIL) and no `Answer`.
    ServFail,
    /// 503 `{"error": "resolver unavailable"}`.
    Unavailable,
}

/// A fault injected through `POST /chaos/faults`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `fault-<n>`.
    pub id: String,
    /// A path prefix, such as `/health`: see [`Fault::applies_to`].
    pub target: String,
    pub effect: FaultEffect,
    /// How long the target keeps failing after the fault is removed.
    pub recovery: Duration,
}

impl Fault {
    /// Whether the fault applies to a request for `path` (without the
    /// query): `path` is `target`, or lies under it (`/health` matches
    /// `/health` and `/health/deep`, not `/healthz`). The `/chaos` API is
    /// never affected, so that a fault can always be removed.
    pub fn applies_to(&self, path: &str) -> bool {
        if path == "/chaos" || path.starts_with("/chaos/") {
            return false;
        }
        let target = self.target.trim_end_matches('/');
        target.is_empty() || path == target || path.strip_prefix(target).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What a fault does to the requests it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultEffect {
    /// Answer this status with `{"error": "injected fault"}` instead of the
    /// endpoint.
    Error(u16),
    /// Wait this long, then let the endpoint answer as usual.
    Latency(Duration),
}

/// One change of a feature flag, as `PUT /flags/{name}` made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagWrite {
    pub name: String,
    /// The value before the change.
    pub previous: bool,
    pub value: bool,
    /// The request's `idempotency-key` header: a later request with the same
    /// key is answered with this change again rather than making another.
    pub idempotency_key: Option<String>,
}

/// A removed fault whose target has not recovered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovering {
    pub fault: Fault,
    /// When the target is healthy again.
    pub until: Instant,
}

impl State {
    /// The effects of the faults, active or still recovering, that apply to
    /// `path`: the longest latency among them, and the status of the oldest
    /// error fault. Forgets the recovery windows that are over.
    pub(crate) fn fault_effects(&mut self, path: &str) -> (Duration, Option<u16>) {
        let now = Instant::now();
        self.recovering.retain(|r| r.until > now);
        let mut latency = Duration::ZERO;
        let mut status = None;
        let recovering = self.recovering.iter().map(|r| &r.fault);
        for fault in self.faults.iter().chain(recovering) {
            if !fault.applies_to(path) {
                continue;
            }
            match fault.effect {
                FaultEffect::Error(code) => {
                    status.get_or_insert(code);
                }
                FaultEffect::Latency(delay) => latency = latency.max(delay),
            }
        }
        (latency, status)
    }
}
