//! The tenants' model budgets, from the `[[token]]`s: `serve` holds each turn to
//! its caller's, `agent-host usage` shows them.
//!
//! A tenant's budget is the `budget` of its tokens. Tokens with the same
//! `tenant` are one tenant (two tokens during a rotation): for each period the
//! smallest limit any of them gives applies, and a period none of them limits
//! has no limit (as `max_concurrent_turns` in `serve/tenants.rs`).

use std::collections::BTreeMap;

use agent_host::Budget;
use agent_host::config_file::TokenSection;

/// Each tenant's budget, by name.
pub(crate) fn by_tenant(tokens: &[TokenSection]) -> BTreeMap<String, Budget> {
    let mut budgets: BTreeMap<String, Budget> = BTreeMap::new();
    for token in tokens {
        let given = token.budget.budget();
        let tenant = token.tenant.get_ref().clone();
        let budget = budgets.entry(tenant).or_insert(Budget::UNLIMITED);
        *budget = budget.tightest(&given);
    }
    budgets
}

/// The tenant and budget of each token, by token index (what a turn of its
/// caller is run with).
pub(crate) struct TokenBudgets {
    by_token: Vec<(String, Budget)>,
}

impl TokenBudgets {
    pub(crate) fn new(tokens: &[TokenSection]) -> Self {
        let budgets = by_tenant(tokens);
        let by_token = tokens
            .iter()
            .map(|t| {
                let tenant = t.tenant.get_ref();
                let budget = budgets.get(tenant).copied().unwrap_or_default();
                (tenant.clone(), budget)
            })
            .collect();
        Self { by_token }
    }

    /// The tenant of token `index` and its budget.
    pub(crate) fn of(&self, index: usize) -> (&str, Budget) {
        self.by_token
            .get(index)
            .map_or(("", Budget::UNLIMITED), |(t, b)| (t.as_str(), *b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_host::config_file::ConfigFile;

    fn tokens(text: &str) -> ConfigFile {
        let path = std::path::Path::new("/nowhere/agent-host.toml");
        ConfigFile::parse(path, text, None, |_| None).expect("the config parses")
    }

    #[test]
    fn the_smallest_limit_of_a_tenants_tokens_applies_per_period() {
        let file = tokens(
            r#"
[[token]]
tenant = "a"
secret = "one-0123456789abcdef"
plugins = ["*"]
budget = { tokens_per_day = 500, tokens_per_month = 9000 }

[[token]]
tenant = "a"
secret = "two-0123456789abcdef"
plugins = ["*"]
budget = { tokens_per_day = 100 }

[[token]]
tenant = "b"
secret = "three-0123456789abcdef"
plugins = ["*"]
"#,
        );
        let budgets = by_tenant(&file.tokens);
        assert_eq!(budgets["a"], Budget::tokens(Some(100), Some(9000)));
        assert_eq!(budgets["b"], Budget::UNLIMITED);
        let by_token = TokenBudgets::new(&file.tokens);
        assert_eq!(by_token.of(1), ("a", Budget::tokens(Some(100), Some(9000))));
        assert_eq!(by_token.of(2), ("b", Budget::UNLIMITED));
    }
}
