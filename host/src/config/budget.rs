//! Model spend budgets: how many tokens a plugin, or a tenant across its plugins,
//! may spend on metered model calls per UTC day and month.

use crate::store::spend::ModelCount;

/// Tokens (input + output), or their cost, a plugin or tenant may spend on
/// metered model calls. Default: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Tokens per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Tokens per UTC month.
    pub tokens_per_month: Option<u64>,
    /// Cost per UTC day, in millionths of a US dollar, as the host's
    /// [`Pricing`](crate::Pricing) prices the calls.
    pub micro_usd_per_day: Option<u64>,
    /// Cost per UTC month, in millionths of a US dollar.
    pub micro_usd_per_month: Option<u64>,
}

impl Budget {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        tokens_per_day: None,
        tokens_per_month: None,
        micro_usd_per_day: None,
        micro_usd_per_month: None,
    };

    /// At most `day` tokens per UTC day and `month` per UTC month (`None`: no
    /// limit for that period).
    pub fn tokens(day: Option<u64>, month: Option<u64>) -> Self {
        Self {
            tokens_per_day: day,
            tokens_per_month: month,
            ..Self::UNLIMITED
        }
    }

    /// This budget with at most `day` and `month` US dollars of cost (`None`: no
    /// limit for that period; negative amounts count as 0).
    pub fn with_usd(mut self, day: Option<f64>, month: Option<f64>) -> Self {
        let micros = |usd: f64| (usd.max(0.0) * 1e6).round() as u64;
        self.micro_usd_per_day = day.map(micros);
        self.micro_usd_per_month = month.map(micros);
        self
    }

    /// True if there is no limit at all.
    pub fn is_unlimited(&self) -> bool {
        *self == Self::UNLIMITED
    }

    /// For each period, the smaller of each limit of `self` and `other` (a limit
    /// either has applies).
    pub fn tightest(&self, other: &Self) -> Self {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            tokens_per_day: min(self.tokens_per_day, other.tokens_per_day),
            tokens_per_month: min(self.tokens_per_month, other.tokens_per_month),
            micro_usd_per_day: min(self.micro_usd_per_day, other.micro_usd_per_day),
            micro_usd_per_month: min(self.micro_usd_per_month, other.micro_usd_per_month),
        }
    }

    /// Which limit the counts of today and this month have reached, if any, as
    /// "N of M tokens today" (or "this month").
    pub fn spent(&self, day: &ModelCount, month: &ModelCount) -> Option<String> {
        let over = |used: u64, limit: Option<u64>, when: &str| {
            limit
                .filter(|limit| used >= *limit)
                .map(|limit| format!("{used} of {limit} tokens {when}"))
        };
        let usd = dollars;
        let over_usd = |used: u64, limit: Option<u64>, when: &str| {
            limit
                .filter(|limit| used >= *limit)
                .map(|limit| format!("{} of {} {when}", usd(used), usd(limit)))
        };
        over(day.tokens(), self.tokens_per_day, "today")
            .or_else(|| over(month.tokens(), self.tokens_per_month, "this month"))
            .or_else(|| over_usd(day.cost_micros, self.micro_usd_per_day, "today"))
            .or_else(|| over_usd(month.cost_micros, self.micro_usd_per_month, "this month"))
    }
}

/// `micros` millionths of a US dollar as `$1.25`, or `$0.000180` below a cent.
fn dollars(micros: u64) -> String {
    match micros {
        10_000.. => format!("${:.2}", micros as f64 / 1e6),
        _ => format!("${:.6}", micros as f64 / 1e6),
    }
}

/// Which model API an origin speaks, so the host can read the tokens each of its
/// answers used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Meter {
    /// OpenAI's chat completions and Responses APIs (and the servers that speak
    /// them: vLLM, llama.cpp, Ollama, gateways).
    OpenAi,
    /// Anthropic's messages API.
    Anthropic,
}

impl Meter {
    /// `openai` or `anthropic`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }

    /// Its name in a config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_spent_once_the_tokens_reach_it() {
        let budget = Budget::tokens(Some(100), Some(1000));
        let day = ModelCount::call(60, 39, 0, false);
        assert_eq!(budget.spent(&day, &day), None);
        let day = ModelCount::call(60, 40, 0, false);
        assert_eq!(
            budget.spent(&day, &day).as_deref(),
            Some("100 of 100 tokens today")
        );
        let month = ModelCount::call(900, 100, 0, false);
        let today = ModelCount::call(1, 1, 0, false);
        assert_eq!(
            budget.spent(&today, &month).as_deref(),
            Some("1000 of 1000 tokens this month")
        );
        assert_eq!(Budget::UNLIMITED.spent(&month, &month), None);
        let dollars = Budget::UNLIMITED.with_usd(Some(0.5), None);
        let cheap = ModelCount::call(1, 1, 0, false).with_cost(499_999);
        assert_eq!(dollars.spent(&cheap, &cheap), None);
        let dear = cheap.with_cost(500_000);
        assert_eq!(
            dollars.spent(&dear, &dear).as_deref(),
            Some("$0.50 of $0.50 today")
        );
    }

    #[test]
    fn the_tightest_of_two_budgets_keeps_each_limit() {
        let a = Budget::tokens(Some(100), None);
        let b = Budget::tokens(Some(50), Some(1000)).with_usd(Some(1.0), None);
        let both = a.tightest(&b);
        assert_eq!(both.tokens_per_day, Some(50));
        assert_eq!(both.tokens_per_month, Some(1000));
        assert_eq!(both.micro_usd_per_day, Some(1_000_000));
        assert_eq!(
            Budget::UNLIMITED.tightest(&Budget::UNLIMITED),
            Budget::UNLIMITED
        );
    }
}
