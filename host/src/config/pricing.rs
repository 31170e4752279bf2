//! What model tokens cost: a price per million input and output tokens per model,
//! so spend can be shown in US dollars and budgets set in them.

/// The price of one model's tokens, in US dollars per million.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Price {
    /// Per million input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
}

impl Price {
    /// `input` and `output` US dollars per million tokens (neither negative).
    pub fn per_million(input: f64, output: f64) -> Result<Self, String> {
        if !(input.is_finite() && output.is_finite() && input >= 0.0 && output >= 0.0) {
            return Err("a price is a number of US dollars per million tokens, 0 or more".into());
        }
        Ok(Self { input, output })
    }

    /// What `input` and `output` tokens cost, in millionths of a US dollar.
    pub fn cost_micros(&self, input: u64, output: u64) -> u64 {
        // Dollars per million tokens are millionths of a dollar per token.
        (input as f64 * self.input + output as f64 * self.output).round() as u64
    }
}

/// Prices by model name. A model an answer names is priced by the longest name
/// here that it starts with, ignoring case (`gpt-4o-mini` prices
/// `GPT-4o-mini-2024-07-18`); a model with no price costs nothing in the counts
/// (and the host logs a warning the first time it meets one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pricing {
    models: Vec<(String, Price)>,
}

impl Pricing {
    /// These prices.
    pub fn new(models: impl IntoIterator<Item = (String, Price)>) -> Self {
        let mut models: Vec<(String, Price)> = models
            .into_iter()
            .map(|(name, price)| (name.to_ascii_lowercase(), price))
            .collect();
        // Longest names first: the first prefix found is the longest.
        models.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        Self { models }
    }

    /// The price of `model`, if it has one.
    pub fn price(&self, model: &str) -> Option<Price> {
        let model = model.to_ascii_lowercase();
        self.models
            .iter()
            .find(|(name, _)| model.starts_with(name.as_str()))
            .map(|(_, price)| *price)
    }

    /// True if nothing is priced.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// What `input` and `output` tokens of `model` cost, in millionths of a US
    /// dollar (0 for a model with no price).
    pub fn cost_micros(&self, model: &str, input: u64, output: u64) -> u64 {
        self.price(model)
            .map_or(0, |p| p.cost_micros(input, output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_name_prices_a_model() {
        let pricing = Pricing::new([
            ("gpt-4o".to_string(), Price::per_million(2.5, 10.0).unwrap()),
            (
                "gpt-4o-mini".to_string(),
                Price::per_million(0.15, 0.6).unwrap(),
            ),
        ]);
        // 1,000,000 input + 1,000,000 output tokens of the mini: $0.75.
        assert_eq!(
            pricing.cost_micros("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000),
            750_000
        );
        assert_eq!(pricing.cost_micros("gpt-4o-2024-08-06", 1000, 100), 3500);
        assert_eq!(pricing.cost_micros("claude-x", 1000, 100), 0);
        assert_eq!(
            pricing.cost_micros("GPT-4o-MINI", 1_000_000, 0),
            150_000,
            "any case"
        );
        assert!(Price::per_million(-1.0, 0.0).is_err());
        assert!(Price::per_million(f64::NAN, 0.0).is_err());
    }
}
