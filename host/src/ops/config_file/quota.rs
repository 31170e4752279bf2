//! A plugin's `quota` table: `{ sessions = 100000, bytes = "1GiB" }`, either count
//! `"unlimited"`, what is not given keeping its default (`Quota::default`).

use std::fmt;

use bytesize::ByteSize;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::config::Quota;

/// The `quota` table of a `[[plugin]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuotaSection {
    /// Most live sessions: `Some(None)` for `"unlimited"`.
    #[serde(default, deserialize_with = "sessions")]
    pub sessions: Option<Option<u64>>,
    /// Most bytes kept: `Some(None)` for `"unlimited"`.
    #[serde(default, deserialize_with = "bytes")]
    pub bytes: Option<Option<u64>>,
    /// Most pending scheduled turns: `Some(None)` for `"unlimited"`.
    #[serde(default, deserialize_with = "schedules")]
    pub schedules: Option<Option<u64>>,
}

impl QuotaSection {
    /// The quota it describes, over the defaults.
    pub fn quota(&self) -> Quota {
        let default = Quota::default();
        Quota::new(
            self.sessions.unwrap_or(default.sessions),
            self.bytes.unwrap_or(default.bytes),
        )
        .with_schedules(self.schedules.unwrap_or(default.schedules))
    }
}

/// Reads one count: a whole number of at least 0, `"unlimited"`, or (for bytes) a
/// size such as `"1GiB"`.
struct Count {
    what: &'static str,
    sizes: bool,
}

impl Count {
    fn expected(&self) -> String {
        match self.sizes {
            true => format!(
                "quota.{}: a size (\"1GiB\", \"500MB\", or a number of bytes) or \"unlimited\"",
                self.what
            ),
            false => format!(
                "quota.{0}: a whole number of {0} or \"unlimited\"",
                self.what
            ),
        }
    }
}

impl<'de> Visitor<'de> for Count {
    type Value = Option<Option<u64>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.expected())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Some(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(|v| Some(Some(v)))
            .map_err(|_| E::custom(format!("{} is not {v} (at least 0)", self.expected())))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(|v| Some(Some(v)))
            .map_err(|_| E::custom(format!("{}; {v} is out of range", self.expected())))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        self.visit_i128(i128::try_from(v).unwrap_or(i128::MAX))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(E::custom(format!("{}, not {v}", self.expected())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v == "unlimited" {
            return Ok(Some(None));
        }
        match (self.sizes, v.parse::<ByteSize>()) {
            (true, Ok(size)) => Ok(Some(Some(size.as_u64()))),
            _ => Err(E::custom(format!("{}, not {v:?}", self.expected()))),
        }
    }
}

fn sessions<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    d.deserialize_any(Count {
        what: "sessions",
        sizes: false,
    })
}

fn schedules<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    d.deserialize_any(Count {
        what: "schedules",
        sizes: false,
    })
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    d.deserialize_any(Count {
        what: "bytes",
        sizes: true,
    })
}

#[cfg(test)]
mod tests {
    use super::QuotaSection;
    use crate::config::Quota;

    fn parse(text: &str) -> Result<Quota, String> {
        toml::from_str::<QuotaSection>(text)
            .map(|q| q.quota())
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn counts_sizes_and_unlimited_are_read() {
        assert_eq!(parse(""), Ok(Quota::default()));
        assert_eq!(
            parse("sessions = 10\nbytes = \"1MiB\""),
            Ok(Quota::new(Some(10), Some(1 << 20)))
        );
        assert_eq!(
            parse("sessions = \"unlimited\"\nbytes = 4096"),
            Ok(Quota::new(None, Some(4096)))
        );
        assert_eq!(
            parse("bytes = \"unlimited\""),
            Ok(Quota::new(Quota::default().sessions, None))
        );
        assert_eq!(
            parse("schedules = 5"),
            Ok(Quota::default().with_schedules(Some(5)))
        );
        assert_eq!(
            parse("schedules = \"unlimited\""),
            Ok(Quota::default().with_schedules(None))
        );
    }

    #[test]
    fn bad_counts_say_what_was_expected() {
        for (text, shown) in [
            ("sessions = -1", "-1"),
            ("sessions = 1.5", "1.5"),
            ("sessions = \"5\"", "\"5\""),
            ("sessions = 99999999999999999999", "99999999999999999999"),
            ("bytes = -5", "-5"),
            ("bytes = \"lots\"", "\"lots\""),
        ] {
            let message = parse(text).unwrap_err();
            assert!(message.starts_with("quota."), "{text}: {message}");
            assert!(message.contains("unlimited"), "{text}: {message}");
            assert!(message.contains(shown), "{text}: {message}");
        }
        let unknown = parse("files = 3").unwrap_err();
        assert!(unknown.contains("unknown field"), "{unknown}");
    }
}
