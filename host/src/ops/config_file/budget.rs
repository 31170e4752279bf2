//! The `budget` table of a `[[plugin]]` or a `[[token]]`:
//! `{ tokens_per_day = 2000000, tokens_per_month = 40000000, usd_per_day = 5.0 }` (see
//! [`Budget`]); what is not given has no limit.

use serde::Deserialize;

use crate::config::Budget;

/// A `budget` table.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(try_from = "Raw")]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    tokens_per_day: Option<u64>,
    tokens_per_month: Option<u64>,
    usd_per_day: Option<f64>,
    usd_per_month: Option<f64>,
}

impl TryFrom<Raw> for BudgetSection {
    type Error = String;

    fn try_from(raw: Raw) -> Result<Self, String> {
        for (name, usd) in [
            ("usd_per_day", raw.usd_per_day),
            ("usd_per_month", raw.usd_per_month),
        ] {
            if usd.is_some_and(|usd| !(usd.is_finite() && usd >= 0.0)) {
                return Err(format!("budget.{name}: a number of US dollars, 0 or more"));
            }
        }
        Ok(Self {
            tokens_per_day: raw.tokens_per_day,
            tokens_per_month: raw.tokens_per_month,
            usd_per_day: raw.usd_per_day,
            usd_per_month: raw.usd_per_month,
        })
    }
}

impl BudgetSection {
    /// True if it limits cost in US dollars (which needs `[pricing]`).
    pub fn in_usd(&self) -> bool {
        self.usd_per_day.is_some() || self.usd_per_month.is_some()
    }

    /// The budget it describes.
    pub fn budget(&self) -> Budget {
        Budget::tokens(self.tokens_per_day, self.tokens_per_month)
            .with_usd(self.usd_per_day, self.usd_per_month)
    }
}
