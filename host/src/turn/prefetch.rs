//! How many history items a session's prefetch reads, learned per plugin.
//!
//! A turn's first use of a session fetches its state and the newest items of its
//! history in one round trip. Fetching too few costs a second round trip when the
//! plugin reads further back; fetching too many costs Redis and, more, the host: each
//! item is a reply the client parses (the bench plugin reads 10 items: prefetching 10
//! instead of 32 took its host CPU per turn from ~55 to ~45 us, BENCHMARKS.md). So
//! the size follows what the plugin's turns read: the most stored items any of the
//! last [`WINDOW`] prefetches' turns wanted, raised at once when a turn wants more.
//! Correctness never depends on it: a turn that wants more than was prefetched
//! fetches the rest.

use std::sync::atomic::{AtomicU32, Ordering};

/// The size before anything is learned: enough for a typical "last N".
const INITIAL: u32 = 32;
/// The most items a prefetch reads, whatever turns wanted (a plugin that reads a
/// whole long history pays the second round trip rather than every turn of every
/// session holding it).
const MAX: u32 = 256;
/// Prefetches after which the size becomes what their turns wanted.
const WINDOW: u32 = 64;

/// The learned prefetch size of one plugin, shared by its concurrent turns.
#[derive(Debug)]
pub(crate) struct PrefetchTail {
    size: AtomicU32,
    /// The most items a turn wanted since the window began.
    window_max: AtomicU32,
    prefetches: AtomicU32,
}

impl Default for PrefetchTail {
    fn default() -> Self {
        Self {
            size: AtomicU32::new(INITIAL),
            window_max: AtomicU32::new(0),
            prefetches: AtomicU32::new(0),
        }
    }
}

impl PrefetchTail {
    /// The items the next prefetch reads; every [`WINDOW`] calls the size becomes
    /// the most that the window's turns wanted.
    pub(crate) fn next(&self) -> u32 {
        let n = self.prefetches.fetch_add(1, Ordering::Relaxed);
        if n % WINDOW == WINDOW - 1 {
            let wanted = self.window_max.swap(0, Ordering::Relaxed);
            self.size.store(wanted, Ordering::Relaxed);
        }
        self.size.load(Ordering::Relaxed)
    }

    /// A turn wanted the newest `items` stored items of a session (whether or not
    /// its session held that many).
    pub(crate) fn wanted(&self, items: u64) {
        let items = u32::try_from(items).unwrap_or(u32::MAX).min(MAX);
        self.window_max.fetch_max(items, Ordering::Relaxed);
        self.size.fetch_max(items, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn size(&self) -> u32 {
        self.size.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_initial_size_and_follows_what_turns_read() {
        let tail = PrefetchTail::default();
        assert_eq!(tail.next(), INITIAL);
        for _ in 0..WINDOW {
            tail.wanted(10);
            tail.next();
        }
        assert_eq!(tail.size(), 10, "a window of turns reading 10 items");
    }

    #[test]
    fn a_turn_that_wants_more_raises_the_size_at_once() {
        let tail = PrefetchTail::default();
        tail.wanted(100);
        assert_eq!(tail.next(), 100);
        tail.wanted(u64::MAX);
        assert_eq!(tail.next(), MAX, "capped");
    }

    #[test]
    fn a_window_without_history_reads_prefetches_none() {
        let tail = PrefetchTail::default();
        for _ in 0..WINDOW {
            tail.next();
        }
        assert_eq!(tail.next(), 0);
        tail.wanted(3);
        assert_eq!(tail.next(), 3);
    }
}
