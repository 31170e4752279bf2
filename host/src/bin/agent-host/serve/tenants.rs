//! Turns per tenant: `max_concurrent_turns` of a `[[token]]` bounds the turns its
//! tenant has in flight on this server, across all its plugins (each plugin's own
//! `limits.max_concurrent_turns` bounds it too). Without it, a tenant with ten
//! plugins would get ten plugins' shares of the host.
//!
//! ## Behavior
//! - Tokens with the same `tenant` share one count (two tokens during a rotation
//!   are one tenant); if they give different limits, the smallest applies.
//! - A turn is counted from when its input has been read until it ends, waiting
//!   for its session or for an earlier run of its `Idempotency-Key` included. A
//!   streamed turn stays counted after its client leaves, since it runs on.
//! - A turn past the limit fails at once with 503 `busy` (and `Retry-After`);
//!   nothing waits in a queue.
//! - A reload keeps a tenant's count when its limit did not change, so the turns
//!   in flight across a reload are counted once; a changed limit starts a new
//!   count (the turns in flight under the old one are not in it).

use std::collections::HashMap;
use std::sync::Arc;

use agent_host::config_file::TokenSection;
use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::api_error::ApiError;

/// The tenants' counts, by token index.
pub(super) struct TenantLimits {
    by_token: Vec<Option<Limit>>,
}

#[derive(Clone)]
struct Limit {
    tenant: String,
    max: u32,
    running: Arc<Semaphore>,
}

/// A turn counted against its tenant's limit until it is dropped.
pub(super) struct TenantTurn {
    _permit: Option<OwnedSemaphorePermit>,
}

impl TenantLimits {
    /// One count per tenant that has a limit on any of its tokens; a tenant
    /// whose limit is the same in `previous` keeps its count.
    pub(super) fn new(tokens: &[TokenSection], previous: Option<&TenantLimits>) -> Self {
        let mut max: HashMap<&str, u32> = HashMap::new();
        for token in tokens {
            if let Some(n) = token.max_concurrent_turns {
                let tenant = token.tenant.get_ref().as_str();
                let entry = max.entry(tenant).or_insert(n);
                *entry = (*entry).min(n);
            }
        }
        let limits: HashMap<&str, Limit> = max
            .into_iter()
            .map(|(tenant, max)| {
                let kept = previous
                    .into_iter()
                    .flat_map(|p| p.by_token.iter().flatten())
                    .find(|l| l.tenant == tenant && l.max == max);
                let running = match kept {
                    Some(limit) => limit.running.clone(),
                    None => Arc::new(Semaphore::new(max as usize)),
                };
                let tenant_name = tenant.to_string();
                (
                    tenant,
                    Limit {
                        tenant: tenant_name,
                        max,
                        running,
                    },
                )
            })
            .collect();
        let by_token = tokens
            .iter()
            .map(|t| limits.get(t.tenant.get_ref().as_str()).cloned())
            .collect();
        Self { by_token }
    }

    /// Counts a turn of the tenant of token `token`, or 503 `busy` if it has as many in
    /// flight as it may.
    pub(super) fn start(&self, token: usize) -> Result<TenantTurn, ApiError> {
        let Some(limit) = self.by_token.get(token).and_then(Option::as_ref) else {
            return Ok(TenantTurn { _permit: None });
        };
        match limit.running.clone().try_acquire_owned() {
            Ok(permit) => Ok(TenantTurn {
                _permit: Some(permit),
            }),
            Err(_) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "tenant {:?} runs as many turns at once as it may ({}); try again",
                    limit.tenant, limit.max
                ),
            )),
        }
    }
}
