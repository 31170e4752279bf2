//! Model spend counters: the tokens a plugin, and a tenant across its plugins,
//! spent on metered model calls, per UTC day and month, kept in the store so
//! every host sharing it counts (and enforces budgets on) the same figures.

use std::time::SystemTime;

use super::keys::{Name, Namespace};

/// Tokens and requests of model calls, added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelCount {
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Input tokens the model read from its cache (OpenAI `cached_tokens`,
    /// Anthropic `cache_read_input_tokens`).
    pub cached_tokens: u64,
    /// Model calls.
    pub requests: u64,
    /// Model calls whose answer carried no usage: their tokens are an estimate
    /// from the bytes sent and received.
    pub estimated: u64,
    /// What the calls cost, in millionths of a US dollar, as the host's pricing
    /// priced each when it was made (0 without a price for its model).
    pub cost_micros: u64,
}

impl ModelCount {
    /// One call with these tokens.
    pub fn call(
        input_tokens: u64,
        output_tokens: u64,
        cached_tokens: u64,
        estimated: bool,
    ) -> Self {
        Self {
            input_tokens,
            output_tokens,
            cached_tokens,
            requests: 1,
            estimated: u64::from(estimated),
            cost_micros: 0,
        }
    }

    /// This count with its cost set.
    pub fn with_cost(mut self, micros: u64) -> Self {
        self.cost_micros = micros;
        self
    }

    /// Input and output tokens together: what a token budget counts.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// `self` and `other` added up.
    pub fn plus(&self, other: &Self) -> Self {
        Self {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cached_tokens: self.cached_tokens.saturating_add(other.cached_tokens),
            requests: self.requests.saturating_add(other.requests),
            estimated: self.estimated.saturating_add(other.estimated),
            cost_micros: self.cost_micros.saturating_add(other.cost_micros),
        }
    }

    /// The fields in the order the stores keep them.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cached_tokens", self.cached_tokens),
            ("requests", self.requests),
            ("estimated", self.estimated),
            ("cost_micros", self.cost_micros),
        ]
    }

    /// From `(field, value)` pairs as [`ModelCount::fields`] names them; unknown
    /// fields are ignored.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut count = Self::default();
        for (name, value) in fields {
            match name {
                "input_tokens" => count.input_tokens = value,
                "output_tokens" => count.output_tokens = value,
                "cached_tokens" => count.cached_tokens = value,
                "requests" => count.requests = value,
                "estimated" => count.estimated = value,
                "cost_micros" => count.cost_micros = value,
                _ => {}
            }
        }
        count
    }
}

/// Whose spend a counter is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spender {
    /// One plugin (its id) in its namespace.
    Plugin {
        /// The plugin's namespace (root and prefix).
        ns: Namespace,
        /// The plugin's id.
        plugin: String,
    },
    /// A tenant (a `[[token]]`'s `tenant`), across its plugins, under a key root.
    Tenant {
        /// The key root of the host.
        root: String,
        /// The tenant's name.
        tenant: String,
    },
}

impl Spender {
    /// The key (Redis) or row name (embedded store) of this spender's counter for
    /// `period` (a [`Periods`] field). All of a spender's keys share one hash tag,
    /// so on a Cluster they live on one node.
    pub fn key(&self, period: &str) -> String {
        match self {
            Self::Plugin { ns, plugin } => {
                let base = ns.base();
                format!("{base}:model:{{{base}}}:{}:{period}", encoded(plugin))
            }
            Self::Tenant { root, tenant } => {
                let tenant = encoded(tenant);
                format!("{root}:tenant:{{{root}:{tenant}}}:model:{period}")
            }
        }
    }
}

/// `text` as a key segment (the same escaping as session ids).
fn encoded(text: &str) -> String {
    Name::key(text).map_or_else(
        |_| text.replace([':', '{', '}'], "_"),
        |n| n.encoded().to_string(),
    )
}

/// The UTC day and month a moment falls in, as the counters name them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Periods {
    /// `d2026-12-05`.
    pub day: String,
    /// `m2026-12`.
    pub month: String,
}

impl Periods {
    /// The periods `at` falls in.
    pub fn at(at: SystemTime) -> Self {
        // RFC 3339 in UTC: `2026-12-05T00:44:23Z`.
        let text = humantime::format_rfc3339_seconds(at).to_string();
        Self {
            day: format!("d{}", &text[..10]),
            month: format!("m{}", &text[..7]),
        }
    }
}

/// How long a day's counter is kept (the usage answers show today and this
/// month; a little past the period so a clock skew between hosts loses nothing).
pub const DAY_KEPT: std::time::Duration = std::time::Duration::from_secs(3 * 86_400);
/// How long a month's counter is kept.
pub const MONTH_KEPT: std::time::Duration = std::time::Duration::from_secs(63 * 86_400);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn periods_are_utc_days_and_months() {
        // 2026-12-31T23:59:59Z and one second later.
        let end = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(Periods::at(end).day, "d2026-12-31");
        assert_eq!(Periods::at(end).month, "m2026-12");
        let next = Periods::at(end + Duration::from_secs(1));
        assert_eq!(
            (next.day.as_str(), next.month.as_str()),
            ("d2027-01-01", "m2027-01")
        );
    }

    #[test]
    fn a_spenders_keys_share_one_tag_and_never_another_spenders() {
        let ns = Namespace::new("agent", "tenant-a").unwrap();
        let plugin = Spender::Plugin {
            ns,
            plugin: "chat".into(),
        };
        let day = plugin.key("d2026-12-05");
        assert_eq!(
            day,
            "agent:tenant-a:model:{agent:tenant-a}:chat:d2026-12-05"
        );
        let tenant = Spender::Tenant {
            root: "agent".into(),
            tenant: "a:b".into(),
        };
        let key = tenant.key("m2026-12");
        assert!(key.starts_with("agent:tenant:{agent:"), "{key}");
        assert!(!key.contains("a:b"), "the tenant's ':' is escaped: {key}");
    }
}
