//! One lock per session with a turn running on this host, so turns of one session
//! wait for each other instead of conflicting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One async lock per (plugin, session) that has a turn running on this host;
/// entries go away with their last user.
#[derive(Default)]
pub(crate) struct SessionLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub(crate) struct SessionGuard<'a> {
    locks: &'a SessionLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl SessionLocks {
    pub(crate) async fn lock(&self, plugin: &str, session: &str) -> SessionGuard<'_> {
        let key = format!("{plugin}\0{session}");
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        SessionGuard {
            locks: self,
            key,
            guard: Some(mutex.lock_owned().await),
        }
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}
