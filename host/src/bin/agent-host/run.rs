//! `agent-host run`: one turn of a plugin, with the flags that stand in for a
//! config file's `[[plugin]]` (prefix, TTL, limits, `env`, outbound origins).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_host::{
    AllowedOrigin, EmbeddedStore, Host, Limits, Outbound, PluginConfig, RedisOptions, RedisStore,
    SecretHeader, StateStore, TurnEvent, TurnOptions,
};
use anyhow::Context;

use crate::{out, outln};

/// Where `run` keeps state when no Redis URL is given.
const DEFAULT_STATE_FILE: &str = ".agent-host/state.redb";

#[derive(clap::Args)]
pub struct RunArgs {
    /// The plugin component (.wasm).
    plugin: PathBuf,
    /// The session the turn belongs to.
    #[arg(long, short)]
    session: String,
    /// The turn's input; read from stdin when not given.
    #[arg(long, short)]
    input: Option<String>,
    /// A Redis store: redis://[user:password@]host[:port][/db] or rediss://...
    /// Without it, state goes to the embedded store file (--state-file).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    store: Option<String>,
    /// PEM file of the CA of the Redis server's certificate (rediss://).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// PEM file of a client certificate for Redis (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file of the client certificate's key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The embedded store's file, used when no Redis URL is given.
    #[arg(long, env = "AGENT_HOST_STATE", default_value = DEFAULT_STATE_FILE)]
    state_file: PathBuf,
    /// Key prefix of the plugin's state (one per tenant). Default: the plugin's
    /// name as it describes itself (letters, digits and _ . - kept, anything else
    /// becomes -), else the file's stem; so plugins never share sessions by
    /// accident. (Before, every plugin's default was `default`: `--prefix default`
    /// reaches what runs wrote then.)
    #[arg(long)]
    prefix: Option<String>,
    /// First segment of every key.
    #[arg(long, default_value = agent_host::host::DEFAULT_ROOT)]
    root: String,
    /// Session TTL, e.g. 30m, 7d; sessions never expire when not given.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttl: Option<Duration>,
    /// Reads extend the session's TTL (needs --ttl).
    #[arg(long, requires = "ttl")]
    sliding: bool,
    /// Wall-clock limit of the turn.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    deadline: Duration,
    /// Run the turn once for this key: running the same command again prints the
    /// stored answer without running the plugin (1 to 255 printable ASCII).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Memory limit of the plugin instance, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: u64,
    /// An environment variable the plugin sees, NAME=VALUE (repeatable; the
    /// plugin sees no other). Like a `[[plugin]]`'s `env`: configuration, not
    /// secrets, which the plugin can read.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// An origin the plugin may send HTTP requests to, scheme://host[:port]
    /// (repeatable; none by default), with a header the host adds to each of
    /// them: `--allow 'https://api.openai.com=Authorization:Bearer
    /// ${env:OPENAI_API_KEY}'`. `${env:NAME}` is read from this command's
    /// environment, as `secret_headers` in a config file are; the plugin never
    /// sees the header and nothing prints it. Repeat the origin for more
    /// headers. `*` lets the plugin reach any public origin (no headers).
    #[arg(long = "allow", value_name = "ORIGIN[=HEADER:VALUE]")]
    allow: Vec<String>,
    /// Where compiled plugins are kept, so the next run of the same component skips
    /// compiling it. Default: `agent-host` under $XDG_CACHE_HOME (or ~/.cache).
    #[arg(long, env = "AGENT_HOST_CACHE")]
    cache_dir: Option<PathBuf>,
    /// The most the cache keeps (e.g. 512MiB, 2GiB); the compiled plugins used
    /// least recently go first.
    #[arg(long, value_parser = parse_size, default_value = "512MiB")]
    cache_max: u64,
    /// Compile the plugin without reading or writing the cache (also when
    /// AGENT_HOST_CACHE is set).
    #[arg(long)]
    no_cache: bool,
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|s| s.as_u64())
        .map_err(|_| format!("{text:?} is not a size (write e.g. 512MiB)"))
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Flags are checked before anything is read or opened.
    let env = parse_env(&args.env)?;
    let outbound = parse_allow(&args.allow, |name| std::env::var(name).ok())?;
    let input = match args.input {
        Some(input) => input,
        None => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the input from stdin")?;
            input
        }
    };
    let store: Arc<dyn StateStore> = match &args.store {
        Some(url) => {
            let mut options = RedisOptions::default();
            options.tls_ca.clone_from(&args.tls_ca);
            options.tls_client_cert = args.tls_cert.clone().zip(args.tls_key.clone());
            let store = RedisStore::open(url, options)?;
            let shown = store.url().to_string();
            store
                .ping()
                .await
                .with_context(|| format!("store {shown}"))?;
            Arc::new(store)
        }
        None => Arc::new(open_embedded(&args.state_file)?),
    };
    let mut builder = Host::builder().shared_store(store).root(args.root);
    match (args.no_cache, args.cache_dir.or_else(default_cache_dir)) {
        (false, Some(dir)) => builder = builder.cache_dir(dir).cache_max(args.cache_max),
        _ => tracing::info!("compiled plugins are not cached"),
    }
    let host = builder.build()?;

    let mut limits = Limits::default();
    limits.deadline = args.deadline;
    limits.memory_bytes = args.memory_mib.saturating_mul(1 << 20);
    let stem = plugin_id(&args.plugin);
    let config = |prefix: String| {
        PluginConfig::new(stem.clone(), prefix)
            .with_default_ttl(args.ttl)
            .with_sliding_ttl(args.sliding)
            .with_limits(limits.clone())
            .with_env(env.clone())
            .with_outbound(outbound.clone())
    };
    match args.prefix {
        Some(prefix) => {
            host.load_plugin_file(config(prefix), &args.plugin).await?;
        }
        None => {
            // Loaded once to learn its name (nothing runs but `describe`), then
            // under the prefix that name gives, without compiling it again.
            let info = host
                .load_plugin_file(config(stem.clone()), &args.plugin)
                .await?;
            let prefix = prefix_of(&info.name).unwrap_or_else(|| stem.clone());
            tracing::info!(prefix = %prefix, "the plugin's prefix, from its name");
            if prefix != stem {
                host.reload_plugin(&stem, config(prefix)).await?;
            }
        }
    }
    let options = match args.idempotency_key {
        Some(key) => TurnOptions::idempotency_key(key),
        None => TurnOptions::default(),
    };
    // What the plugin emits is printed as it comes. A reader that went away
    // stops the printing, not the turn: it commits all the same.
    let (events, mut emitted) = tokio::sync::mpsc::channel(256);
    let printer = tokio::spawn(async move {
        let mut shown = String::new();
        let mut printing = true;
        while let Some(event) = emitted.recv().await {
            match event {
                TurnEvent::Chunk(chunk) => {
                    printing = printing && out::chunk(&chunk).is_ok();
                    shown.push_str(&chunk);
                }
                TurnEvent::Restart => {
                    let again = "\n(the session changed meanwhile: the turn runs again)";
                    let _ = writeln!(std::io::stderr(), "{again}");
                    shown.clear();
                }
                _ => {}
            }
        }
        shown
    });
    let outcome = host
        .run_turn_with(&stem, &args.session, &input, options.with_stream(events))
        .await;
    let shown = printer.await.unwrap_or_default();
    // The chunks' line ends before what comes next, the answer or an error.
    let line_ended = match !shown.is_empty() && !shown.ends_with('\n') {
        true => outln!(""),
        false => Ok(()),
    };
    let answer = outcome?;
    line_ended?;
    if answer.replayed {
        let replayed = "(the stored answer of an earlier run with this idempotency key)";
        let _ = writeln!(std::io::stderr(), "{replayed}");
    }
    // The answer, unless the chunks already showed it.
    if answer.output != shown.trim_end_matches('\n') || shown.is_empty() {
        outln!("{}", answer.output)?;
    }
    Ok(())
}

/// `--env NAME=VALUE` flags; a later one for the same name wins, as in a shell.
fn parse_env(flags: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    for flag in flags {
        let Some((name, value)) = flag.split_once('=') else {
            anyhow::bail!("--env {flag:?}: write NAME=VALUE");
        };
        if name.is_empty() || name.contains('\0') || value.contains('\0') {
            anyhow::bail!("--env {name:?}: a name of at least one character, and no NUL");
        }
        env.retain(|(n, _)| n != name);
        env.push((name.to_string(), value.to_string()));
    }
    Ok(env)
}

/// `--allow ORIGIN[=HEADER:VALUE]` flags, the values' `${env:NAME}` read through
/// `env`. Errors name the origin and the header, never a value.
fn parse_allow(flags: &[String], env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Outbound> {
    let mut outbound = Outbound::default();
    for flag in flags {
        let (origin, header) = match flag.split_once('=') {
            Some((origin, header)) => (origin, Some(header)),
            None => (flag.as_str(), None),
        };
        let parsed = AllowedOrigin::parse(origin).map_err(|e| anyhow::anyhow!("--allow {e}"))?;
        let index = match outbound
            .origins
            .iter()
            .position(|o| o.as_str() == parsed.as_str())
        {
            Some(index) => index,
            None => {
                outbound.allow_any_origin |= parsed.as_str() == "*";
                outbound.origins.push(parsed);
                outbound.origins.len() - 1
            }
        };
        let Some(header) = header else { continue };
        let Some((name, template)) = header.split_once(':') else {
            anyhow::bail!(
                "--allow {origin}: write ORIGIN=HEADER:VALUE, e.g. {origin}=Authorization:Bearer ${{env:API_KEY}}"
            );
        };
        let header = SecretHeader::from_template(name.trim(), template.trim(), &env)
            .map_err(|e| anyhow::anyhow!("--allow {origin}: {e}"))?;
        let entry = outbound.origins.remove(index);
        let entry = entry
            .with_secret_header(header)
            .map_err(|e| anyhow::anyhow!("--allow {origin}: {e}"))?;
        outbound.origins.insert(index, entry);
    }
    outbound.check()?;
    Ok(outbound)
}

/// A prefix from a plugin's name: letters, digits and `_ . -` kept, anything
/// else `-`, at most 64 bytes; `None` if nothing of it is left.
pub(crate) fn prefix_of(name: &str) -> Option<String> {
    let prefix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let prefix = prefix.trim_matches('-');
    (!prefix.is_empty()).then(|| prefix.to_string())
}

/// `agent-host` in the user's cache directory: `$XDG_CACHE_HOME`, else `~/.cache`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("agent-host"))
}

/// Opens the embedded store at `path`, creating its directory.
fn open_embedded(path: &Path) -> anyhow::Result<EmbeddedStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
    }
    Ok(EmbeddedStore::open(path)?)
}

/// A plugin id from the file name: `chat_memory.wasm` -> `chat_memory`.
fn plugin_id(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    prefix_of(&stem).unwrap_or_else(|| "plugin".into())
}

#[cfg(test)]
mod tests {
    use super::{parse_allow, parse_env, prefix_of};

    fn flags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefixes_come_from_names() {
        assert_eq!(prefix_of("chat-memory").as_deref(), Some("chat-memory"));
        assert_eq!(prefix_of("My Agent v2!").as_deref(), Some("My-Agent-v2"));
        assert_eq!(prefix_of("é/:").as_deref(), None);
        assert_eq!(prefix_of(&"x".repeat(100)).unwrap().len(), 64);
    }

    #[test]
    fn env_flags_are_name_value_pairs() {
        let env = parse_env(&flags(&["A=1", "B=x=y", "A=2", "EMPTY="])).unwrap();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("B", "x=y"), ("A", "2"), ("EMPTY", "")]);
        let error = parse_env(&flags(&["NOVALUE"])).unwrap_err().to_string();
        assert_eq!(error, "--env \"NOVALUE\": write NAME=VALUE");
        assert!(parse_env(&flags(&["=1"])).is_err());
    }

    /// Header values are read from the environment and never shown, not in an
    /// error and not in the allow-list's Debug.
    #[test]
    fn allow_flags_read_keys_from_the_environment_and_never_show_them() {
        let env = |name: &str| (name == "KEY").then(|| "sk-s3cret".to_string());
        let outbound = parse_allow(
            &flags(&[
                "https://api.openai.com=Authorization:Bearer ${env:KEY}",
                "https://api.openai.com=OpenAI-Organization:org-1",
                "http://127.0.0.1:8099",
            ]),
            env,
        )
        .unwrap();
        assert_eq!(outbound.origins.len(), 2);
        assert_eq!(outbound.origins[0].secret_headers.len(), 2);
        assert!(!format!("{outbound:?}").contains("s3cret"));
        assert!(!format!("{outbound:?}").contains("org-1"));

        let error = |list: &[&str]| parse_allow(&flags(list), env).unwrap_err().to_string();
        assert_eq!(
            error(&["https://x.example=Authorization:Bearer ${env:UNSET}"]),
            "--allow https://x.example: secret header Authorization: environment variable UNSET is not set"
        );
        for bad in [
            "https://x.example=Authorization",
            "https://x.example=Bad Header:sk-s3cret",
            "https://x.example=X-Key:sk-s3cret\u{7f}",
            "ftp://x.example",
            "https://x.example/v1",
            "*=Authorization:Bearer ${env:KEY}",
        ] {
            let message = error(&[bad]);
            assert!(message.starts_with("--allow "), "{message}");
            assert!(
                !message.contains("s3cret") && !message.contains('\n'),
                "{message}"
            );
        }
        let any = parse_allow(&flags(&["*"]), env).unwrap();
        assert!(any.allow_any_origin);
    }
}
