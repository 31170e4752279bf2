//! The `budget` table of a `[[plugin]]` or a `[[token]]`:
//! `{ tokens_per_day = 2000000, tokens_per_month = 40000000, usd_per_day = 5.0 }` (see
//! [`Budget`]); what is not given has no limit.

use serde::Deserialize;

use crate::config::Budget;

/// A `budget` table.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BudgetSection {
    /// Tokens (input + output) of metered model calls per UTC day.
    pub tokens_per_day: Option<u64>,
    /// The same per UTC month.
    pub tokens_per_month: Option<u64>,
    /// US dollars per UTC day, as `[pricing]` prices the calls.
    pub usd_per_day: Option<f64>,
    /// The same per UTC month.
    pub usd_per_month: Option<f64>,
}

impl BudgetSection {
    /// The budget it describes.
    pub fn budget(&self) -> Budget {
        Budget::tokens(self.tokens_per_day, self.tokens_per_month)
            .with_usd(self.usd_per_day, self.usd_per_month)
    }
}
