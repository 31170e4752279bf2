//! Model spend budgets: how many tokens a plugin, or a tenant across its plugins,
//! may spend on metered model calls per UTC day and month.

use crate::store::spend::ModelCount;

/// Tokens (input + output) a plugin or tenant may spend on metered model calls.
/// Default: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Per UTC day.
    pub tokens_per_day: Option<u64>,
    /// Per UTC month.
    pub tokens_per_month: Option<u64>,
}

impl Budget {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        tokens_per_day: None,
        tokens_per_month: None,
    };

    /// At most `day` tokens per UTC day and `month` per UTC month (`None`: no
    /// limit for that period).
    pub fn tokens(day: Option<u64>, month: Option<u64>) -> Self {
        Self {
            tokens_per_day: day,
            tokens_per_month: month,
        }
    }

    /// True if there is no limit at all.
    pub fn is_unlimited(&self) -> bool {
        self.tokens_per_day.is_none() && self.tokens_per_month.is_none()
    }

    /// Which limit the counts of today and this month have reached, if any, as
    /// "N of M tokens today" (or "this month").
    pub fn spent(&self, day: &ModelCount, month: &ModelCount) -> Option<String> {
        let over = |used: u64, limit: Option<u64>, when: &str| {
            limit
                .filter(|limit| used >= *limit)
                .map(|limit| format!("{used} of {limit} tokens {when}"))
        };
        over(day.tokens(), self.tokens_per_day, "today")
            .or_else(|| over(month.tokens(), self.tokens_per_month, "this month"))
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
    }
}
