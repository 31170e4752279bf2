//! Who a plugin is and where its state lives: what every part of a turn needs.

use crate::config::PluginConfig;
use crate::store::keys::Namespace;
use crate::turn::prefetch::PrefetchTail;

/// What a plugin's state calls need: who the plugin is and where its state lives.
pub(crate) struct PluginScope {
    pub(crate) config: PluginConfig,
    pub(crate) ns: Namespace,
    /// How much history a session's prefetch reads, learned from the turns.
    pub(crate) prefetch: PrefetchTail,
}
