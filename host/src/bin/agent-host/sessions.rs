//! `agent-host sessions`: the sessions of a configured plugin, read and changed
//! in its store without running it. While a `serve` holds an embedded store's
//! file, each command says which route of the HTTP API does the same instead.

use agent_host::config_file::ConfigFile;
use agent_host::ops::schedules;
use agent_host::store::StateStore;
use agent_host::{Periods, PluginConfig, StoreError, admin, checkpoints};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use clap::Subcommand;

use crate::outln;
use crate::views;

#[derive(clap::Args)]
pub(crate) struct SessionsArgs {
    /// The config file that names the plugin and the store.
    #[arg(long, short, env = "AGENT_HOST_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The plugin id (as in the config file).
    #[arg(long, short, global = true)]
    plugin: Option<String>,
    #[command(subcommand)]
    action: SessionsAction,
}

#[derive(Subcommand)]
pub(crate) enum SessionsAction {
    /// One session id per line, in byte order.
    List {
        /// Start after this session id.
        #[arg(long)]
        after: Option<String>,
        /// At most this many (default: all).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// A session as JSON: state, version, history, TTL. The state and history
    /// items that are JSON are shown as JSON values; the others as text, listed in
    /// "not_json".
    Show {
        /// The session id.
        session: String,
        /// Show the stored documents as text (JSON strings), as the HTTP API does.
        #[arg(long)]
        raw: bool,
    },
    /// Delete a session (state and history).
    Delete {
        /// The session id.
        session: String,
    },
    /// A session's current state version and its kept ones (`keep_versions`) as
    /// JSON, newest first; with --version, that version's document.
    Versions {
        /// The session id.
        session: String,
        /// Show this version's document (as `show` shows a state).
        #[arg(long)]
        version: Option<u64>,
        /// With --version: the document as text (a JSON string), as the HTTP API
        /// shows it.
        #[arg(long, requires = "version")]
        raw: bool,
    },
    /// Write a kept version's document as the session's new version (nothing is
    /// erased); prints the new version number.
    Rollback {
        /// The session id.
        session: String,
        /// The version to go back to.
        #[arg(long)]
        to: u64,
    },
    /// What the plugin keeps in the store, as its quota counts it, and its quota,
    /// and what it spent on model calls today and this month, and its budget, as
    /// JSON (see also `agent-host usage`).
    Usage,
    /// A session's scheduled turns as JSON (pending, running, finished in the last
    /// day); with --add, schedule one (after --delay or at --at); with --cancel,
    /// cancel a pending one.
    Schedules {
        /// The session id.
        session: String,
        /// Schedule a turn with this input.
        #[arg(long, conflicts_with = "cancel")]
        add: Option<String>,
        /// With --add: when, from now ("90s", "10m", "2h").
        #[arg(long, requires = "add", conflicts_with = "at")]
        delay: Option<humantime::Duration>,
        /// With --add: when, in unix ms.
        #[arg(long, requires = "add")]
        at: Option<u64>,
        /// Cancel the pending schedule with this id.
        #[arg(long)]
        cancel: Option<String>,
    },
    /// Copy a version of a session, and its history up to then, into a new session.
    Fork {
        /// The session id.
        session: String,
        /// The version to copy.
        #[arg(long)]
        from_version: u64,
        /// The new session's id (it must not exist).
        #[arg(long)]
        to: String,
    },
}

pub(crate) async fn sessions(args: SessionsArgs) -> anyhow::Result<()> {
    let Some(config) = args.config else {
        anyhow::bail!("give the config file with --config FILE (or AGENT_HOST_CONFIG)");
    };
    let Some(plugin) = args.plugin else {
        anyhow::bail!("give the plugin with --plugin ID");
    };
    let file = ConfigFile::load(&config)?;
    let ns = file.namespace(&plugin)?;
    let limits = file.plugin(&plugin).map(|p| p.config().limits);
    let page_size = limits.map_or(1000, |l| l.max_items_per_call);
    let store = open_store(&file, &args.action.route(&plugin))?;
    let store = store.as_ref();
    match args.action {
        SessionsAction::List { after, limit } => {
            let mut cursor = after;
            let mut left = limit.unwrap_or(u64::MAX);
            while left > 0 {
                let want = u32::try_from(left.min(u64::from(page_size))).unwrap_or(page_size);
                let page = admin::list_sessions(store, &ns, cursor.as_deref(), want).await?;
                for session in &page.sessions {
                    outln!("{session}")?;
                }
                left = left.saturating_sub(page.sessions.len() as u64);
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        SessionsAction::Show { session, raw } => {
            let snapshot = admin::inspect(store, &ns, &session, page_size).await?;
            if !snapshot.exists {
                anyhow::bail!("plugin {plugin} has no session {session:?}");
            }
            let mut body = views::session_json(&session, &snapshot);
            if !raw {
                body = views::decoded(body, &views::Stored::session(&snapshot));
            }
            outln!("{}", serde_json::to_string_pretty(&body)?)?;
        }
        SessionsAction::Delete { session } => {
            if !admin::clear_session(store, &ns, &session).await? {
                anyhow::bail!("plugin {plugin} has no session {session:?}");
            }
            outln!("deleted {session}")?;
        }
        SessionsAction::Versions {
            session,
            version,
            raw,
        } => {
            let body = match version {
                None => views::versions_json(&checkpoints::versions(store, &ns, &session).await?),
                Some(v) => match checkpoints::load_version(store, &ns, &session, v).await? {
                    Some(found) if raw => views::version_json(&found),
                    Some(found) => {
                        views::decoded(views::version_json(&found), &views::Stored::version(&found))
                    }
                    None => anyhow::bail!("session {session:?} has no version {v}"),
                },
            };
            outln!("{}", serde_json::to_string_pretty(&body)?)?;
        }
        SessionsAction::Rollback { session, to } => {
            let config = plugin_config(&file, &plugin)?;
            let version = checkpoints::rollback(store, &ns, &config, &session, to).await?;
            outln!("{session} is at version {version} (the document of version {to})")?;
        }
        SessionsAction::Usage => {
            let periods = Periods::at(SystemTime::now());
            let body = crate::usage::plugin_json(&file, store, &plugin, &periods).await?;
            outln!("{}", serde_json::to_string_pretty(&body)?)?;
        }
        SessionsAction::Schedules {
            session,
            add,
            delay,
            at,
            cancel,
        } => {
            if let Some(input) = add {
                let due = match (at, delay) {
                    (Some(at), _) => schedules::Due::At(at),
                    (None, Some(d)) => schedules::Due::After(d.into()),
                    (None, None) => anyhow::bail!("give --delay or --at with --add"),
                };
                let config = plugin_config(&file, &plugin)?;
                let added = schedules::add(store, &ns, &config, &session, due, input).await?;
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&views::schedule_json(&added))?
                )?;
            } else if let Some(id) = cancel {
                if !schedules::cancel(store, &ns, Some(&session), &id).await? {
                    anyhow::bail!("session {session:?} has no pending schedule {id:?}");
                }
                outln!("cancelled {id}")?;
            } else {
                let found = schedules::list(store, &ns, &session).await?;
                let body: Vec<_> = found.iter().map(views::schedule_json).collect();
                outln!("{}", serde_json::to_string_pretty(&body)?)?;
            }
        }
        SessionsAction::Fork {
            session,
            from_version,
            to,
        } => {
            let config = plugin_config(&file, &plugin)?;
            let forked =
                checkpoints::fork(store, &ns, &config, &session, from_version, &to).await?;
            outln!(
                "forked {session} version {from_version} into {to} ({} history items)",
                forked.history_len
            )?;
        }
    }
    Ok(())
}

impl SessionsAction {
    /// The HTTP API's route that does what this command does.
    fn route(&self, plugin: &str) -> String {
        let base = format!("/v1/plugins/{plugin}/sessions");
        match self {
            Self::List { .. } => format!("GET {base}"),
            Self::Show { session, .. } => format!("GET {base}/{session}"),
            Self::Delete { session } => format!("DELETE {base}/{session}"),
            Self::Versions {
                session,
                version: None,
                ..
            } => format!("GET {base}/{session}/versions"),
            Self::Versions {
                session,
                version: Some(v),
                ..
            } => format!("GET {base}/{session}/versions/{v}"),
            Self::Rollback { session, .. } => format!("POST {base}/{session}/rollback"),
            Self::Fork { session, .. } => format!("POST {base}/{session}/fork"),
            Self::Schedules { session, .. } => format!("{base}/{session}/schedules"),
            Self::Usage => format!("GET /v1/plugins/{plugin}/usage"),
        }
    }
}

/// The config file's store. When another process (a running `serve`) holds the
/// embedded store's file, the error says so and names `route`, the HTTP API's
/// way to do the same through that server.
pub(crate) fn open_store(file: &ConfigFile, route: &str) -> anyhow::Result<Arc<dyn StateStore>> {
    match file.open_store() {
        Err(agent_host::Error::Store(StoreError::InUse { path })) => anyhow::bail!(
            "the store file {} is open in another process (a running `agent-host serve`?): \
             stop it, or use the server's HTTP API: {route} with a tenant token (docs/http-api.md)",
            path.display()
        ),
        store => Ok(store?),
    }
}

/// The configuration the file gives `plugin`.
fn plugin_config(file: &ConfigFile, plugin: &str) -> anyhow::Result<PluginConfig> {
    match file.plugin(plugin) {
        Some(section) => Ok(section.config()),
        None => anyhow::bail!("the config file has no plugin {plugin:?}"),
    }
}
