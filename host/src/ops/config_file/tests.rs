//! Unit tests of the config file: good files, defaults, and every kind of mistake.

use std::path::Path;

use super::ConfigFile;

fn parse(text: &str) -> Result<ConfigFile, String> {
    let env = |name: &str| (name == "TOKEN_A").then(|| "aaaaaaaaaaaaaaaaaaaa".to_string());
    // Cargo.toml stands in for a wasm file that exists.
    let text = text.replace("WASM", "Cargo.toml");
    let file =
        ConfigFile::parse(Path::new("./conf.toml"), &text, None, env).map_err(|e| e.to_string())?;
    file.require_secrets().map_err(|e| e.to_string())?;
    Ok(file)
}

const GOOD: &str = r#"
[store]
root = "r"

[[plugin]]
id = "chat"
wasm = "WASM"
prefix = "tenant-a"
default_ttl = "7d"
limits = { memory = "32MiB", deadline = "2s", max_value = "10KiB" }

[[token]]
tenant = "a"
secret_env = "TOKEN_A"
plugins = ["chat"]
"#;

#[test]
fn a_good_file_is_read_with_units_and_defaults() {
    let file = parse(GOOD).unwrap();
    let plugin = file.plugin("chat").unwrap().config();
    assert_eq!(plugin.limits.memory_bytes, 32 << 20);
    assert_eq!(plugin.limits.max_value_bytes, 10 << 10);
    assert_eq!(plugin.limits.deadline.as_secs(), 2);
    assert_eq!(plugin.default_ttl.unwrap().as_secs(), 7 * 24 * 3600);
    assert_eq!(plugin.limits.max_history_items, 10_000);
    assert!(file.tokens[0].allows("chat") && !file.tokens[0].allows("other"));
    assert_eq!(file.server.listen.port(), 8080);
    assert_eq!(file.server.keep_resident.as_u64(), 0);
    let kept = parse(&format!("[server]\nkeep_resident = \"32MiB\"\n{GOOD}")).unwrap();
    assert_eq!(kept.server.keep_resident.as_u64(), 32 << 20);
    assert_eq!(file.server.cache_max.as_u64(), 512 << 20);
    let capped = parse(&format!("[server]\ncache_max = \"64MiB\"\n{GOOD}")).unwrap();
    assert_eq!(capped.server.cache_max.as_u64(), 64 << 20);
    assert_eq!(plugin.instance_reuse, 0);
    let reused = parse(&GOOD.replace(
        "prefix = \"tenant-a\"",
        "prefix = \"tenant-a\"\ninstance_reuse = 100",
    ));
    assert_eq!(
        reused
            .unwrap()
            .plugin("chat")
            .unwrap()
            .config()
            .instance_reuse,
        100
    );
    assert_eq!(plugin.idempotency_ttl.as_secs(), 24 * 3600);
    let kept = parse(&GOOD.replace(
        "prefix = \"tenant-a\"",
        "prefix = \"tenant-a\"\nidempotency_ttl = \"2h\"",
    ));
    let config = kept.unwrap().plugin("chat").unwrap().config();
    assert_eq!(config.idempotency_ttl.as_secs(), 2 * 3600);
    assert_eq!(config.buckets, None);
    let narrowed = parse(&GOOD.replace(
        "prefix = \"tenant-a\"",
        "prefix = \"tenant-a\"\nbuckets = [\"cache\", \"\"]",
    ));
    let config = narrowed.unwrap().plugin("chat").unwrap().config();
    assert_eq!(
        config.buckets,
        Some(vec!["cache".to_owned(), String::new()])
    );
    // The secret never shows in Debug output.
    assert!(!format!("{file:?}").contains("aaaa"));
}

#[test]
fn a_missing_secret_fails_only_where_secrets_are_needed() {
    let text = GOOD
        .replace("TOKEN_A", "TOKEN_UNSET")
        .replace("WASM", "Cargo.toml");
    let file = ConfigFile::parse(Path::new("./conf.toml"), &text, None, |_| None).unwrap();
    assert!(file.plugin("chat").is_some());
    let err = file.require_secrets().unwrap_err().to_string();
    assert!(
        err.contains("conf.toml:13:10") && err.contains("TOKEN_UNSET is not set"),
        "{err}"
    );
}

#[test]
fn errors_name_the_file_line_and_reason() {
    let cases = [
        (
            GOOD.replace("root =", "rot ="),
            "conf.toml:3:1",
            "unknown field `rot`",
        ),
        (
            GOOD.replace("\"7d\"", "\"7 parsecs\""),
            "conf.toml:9:15",
            "not a duration",
        ),
        (GOOD.replace("\"32MiB\"", "\"lots\""), "conf.toml:10:21", ""),
        (
            GOOD.replace("\"WASM\"", "\"nope.wasm\""),
            "conf.toml:7:8",
            "no file at",
        ),
        (
            GOOD.replace("\"tenant-a\"", "\"a:b\""),
            "conf.toml:8:10",
            "prefix \"a:b\"",
        ),
        (
            GOOD.replace(
                "prefix = \"tenant-a\"",
                "prefix = \"tenant-a\"\nbuckets = [\"a\\u0001b\"]",
            ),
            "conf.toml:8:10",
            "buckets: invalid bucket: has a control character",
        ),
        (
            GOOD.replace("[\"chat\"]", "[\"chta\"]"),
            "conf.toml:15:12",
            "no plugin \"chta\"",
        ),
        (
            GOOD.replace("TOKEN_A", "TOKEN_B"),
            "conf.toml:13:10",
            "TOKEN_B is not set",
        ),
        (
            GOOD.replace("secret_env = \"TOKEN_A\"", "secret = \"short\""),
            "conf.toml:13:10",
            "at least 16",
        ),
        (
            format!("{GOOD}\n[[plugin]]\nid = \"chat\"\nwasm = \"WASM\"\nprefix = \"b\"\n"),
            "conf.toml:18:6",
            "used twice",
        ),
    ];
    for (text, place, reason) in cases {
        let err = parse(&text).unwrap_err();
        assert!(err.contains(place), "{err} (expected {place})");
        assert!(err.contains(reason), "{err} (expected {reason})");
    }
}

#[test]
fn budgets_meters_and_prices_are_read_and_bad_ones_named() {
    let file = parse(
        r#"
[pricing]
"gpt-4o-mini" = { input = 0.15, output = 0.6 }

[[plugin]]
id = "chat"
wasm = "WASM"
prefix = "a"
budget = { tokens_per_day = 1000, usd_per_month = 2.5 }
[[plugin.outbound]]
origin = "https://api.openai.com"
meter = "openai"

[[token]]
tenant = "acme"
secret = "0123456789abcdef0123"
plugins = ["chat"]
budget = { tokens_per_month = 50000 }
"#,
    )
    .unwrap();
    let config = file.plugins[0].config();
    assert_eq!(config.budget.tokens_per_day, Some(1000));
    assert_eq!(config.budget.micro_usd_per_month, Some(2_500_000));
    assert_eq!(
        config.outbound.origins[0].meter,
        Some(crate::config::Meter::OpenAi)
    );
    assert_eq!(file.tokens[0].budget.budget().tokens_per_month, Some(50000));
    assert_eq!(
        file.pricing().cost_micros("gpt-4o-mini-2024", 1_000_000, 0),
        150_000
    );

    let bad_meter = "[[plugin]]\nid = \"c\"\nwasm = \"WASM\"\nprefix = \"a\"\n[[plugin.outbound]]\norigin = \"https://x.com\"\nmeter = \"openia\"\n";
    let error = parse(bad_meter).unwrap_err();
    assert!(
        error.contains(":7:") && error.contains("meter \"openia\""),
        "{error}"
    );
    let bad_price = "[pricing]\nm = { input = -1.0, output = 1.0 }\n";
    let error = parse(bad_price).unwrap_err();
    assert!(
        error.contains(":2:") && error.contains("pricing of \"m\""),
        "{error}"
    );
    let unknown =
        "[[plugin]]\nid = \"c\"\nwasm = \"WASM\"\nprefix = \"a\"\nbudget = { tokens = 5 }\n";
    assert!(
        parse(unknown).unwrap_err().contains(":5:"),
        "an unknown budget key is refused"
    );
}

#[test]
fn a_dollar_budget_needs_prices_and_a_sane_amount() {
    let plugin = "[[plugin]]\nid = \"c\"\nwasm = \"WASM\"\nprefix = \"a\"\n";
    let unpriced = format!("{plugin}budget = {{ usd_per_day = 1.0 }}\n");
    let error = parse(&unpriced).unwrap_err();
    assert!(error.contains("needs a [pricing] table"), "{error}");
    let negative = format!(
        "{plugin}budget = {{ usd_per_day = -1.0 }}\n[pricing]\nm = {{ input = 1.0, output = 1.0 }}\n"
    );
    let error = parse(&negative).unwrap_err();
    assert!(
        error.contains(":5:") && error.contains("budget.usd_per_day"),
        "{error}"
    );
    let bad_price = "[pricing]\nm = 3\n";
    assert!(
        parse(bad_price).unwrap_err().contains("a price: { input ="),
        "a readable expectation"
    );
}

#[test]
fn a_secret_file_is_read_at_each_load_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.wasm"), b"").unwrap();
    let text = "[[plugin]]\nid = \"chat\"\nwasm = \"plugin.wasm\"\nprefix = \"a\"\n\n\
                [[token]]\ntenant = \"a\"\nsecret_file = \"secrets/a\"\nplugins = [\"chat\"]\n\n\
                [[admin]]\nsecret_file = \"secrets/admin\"\n";
    let config = dir.path().join("agent-host.toml");
    let load = || ConfigFile::parse(&config, text, None, |_| None);
    // Not there yet: the admin commands read the file anyway, the server may not.
    let file = load().unwrap();
    let missing = file.missing_secrets();
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert!(
        missing[0].contains("cannot read secret_file"),
        "{missing:?}"
    );
    assert!(missing[0].contains("agent-host.toml:7:"), "{missing:?}");
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/a"), "a-token-from-a-file-0123\n").unwrap();
    std::fs::write(
        dir.path().join("secrets/admin"),
        "admin-token-from-a-file-01\n",
    )
    .unwrap();
    let file = load().unwrap();
    assert!(file.missing_secrets().is_empty());
    assert_eq!(file.tokens[0].secret(), "a-token-from-a-file-0123");
    assert_eq!(file.admins[0].secret(), "admin-token-from-a-file-01");
    let both = text.replace(
        "secret_file = \"secrets/a\"",
        "secret_file = \"secrets/a\"\nsecret = \"x\"",
    );
    let refused = ConfigFile::parse(&config, &both, None, |_| None).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("exactly one of secret, secret_env and secret_file"),
        "{refused}"
    );
}
