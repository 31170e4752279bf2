//! Pace: how many turns of one plugin may be in flight at once, from what its
//! turns cost, so that past what the cores can carry a plugin's new turns are
//! refused early (503 `busy`) and the turns it has keep their latency.
//!
//! Little's law: a plugin whose turn takes `own` of wall-clock time (waiting on
//! its model and the store, and computing) of which `cpu` on a core can have
//! `cores × own / cpu` turns in flight before the cores are full. Past that, each
//! new turn only makes all of them slower: a Python turn costs milliseconds of
//! CPU, so a thousand waiting on their model, woken together, queue for seconds
//! (measured: p99 4.6 s for a 1 s model at 1,024 connections, BENCHMARKS.md).
//!
//! Both figures are averages of the plugin's last turns (`cpu`: the time its
//! guest held a core, `cores.rs`; `own`: its wall-clock time but the time it
//! waited for a core). `own` is taken only from turns that hardly waited for a
//! core, so that an overload, which stretches every turn, does not raise the
//! limit it should hold. Until a plugin has run [`WARM_UP`] turns, and for a
//! plugin whose turns cost no measurable CPU, there is no limit. A Rust turn
//! (well under a millisecond of guest CPU per second of model time) gets a limit
//! of thousands, which no socket count reaches: only costly plugins are paced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use super::cores::CoreTime;
use crate::error::TurnError;

/// Turns a plugin runs before its limit applies.
pub(crate) const WARM_UP: u32 = 16;

/// The share of the cores a plugin's turns may fill: what is left is for the
/// host's own work (HTTP, the store client) and the turns' bursts.
const UTILIZATION: f64 = 0.8;

/// A turn waited for a core less than this share of its time: its `own` time
/// was not stretched by an overload.
const QUIET: f64 = 0.1;

/// One plugin's turns in flight and what they cost.
#[derive(Default)]
pub(crate) struct Pace {
    in_flight: AtomicU32,
    /// Exponential averages, in microseconds.
    cpu_us: AtomicU64,
    own_us: AtomicU64,
    samples: AtomicU32,
}

/// A turn counted in flight until it is dropped, which records what it cost.
pub(crate) struct Paced {
    pace: Arc<Pace>,
    started: Instant,
    /// What the turn spent on (and waiting for) a core.
    pub(crate) time: Arc<CoreTime>,
}

impl Pace {
    /// Counts a new turn of `plugin`, or refuses it when the plugin has as many
    /// in flight as `cores` can carry at its cost.
    pub(crate) fn start(self: &Arc<Self>, plugin: &str, cores: u32) -> Result<Paced, TurnError> {
        let limit = self.limit(cores);
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (limit.is_none_or(|limit| n < limit)).then_some(n + 1)
            });
        match admitted {
            Ok(_) => Ok(Paced {
                pace: self.clone(),
                started: Instant::now(),
                time: Arc::default(),
            }),
            Err(in_flight) => Err(TurnError::AtCapacity {
                plugin: plugin.to_string(),
                in_flight,
                cpu_ms: self.cpu_us.load(Ordering::Relaxed) as f64 / 1e3,
            }),
        }
    }

    /// Turns in flight right now.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How many turns may be in flight on `cores`; `None`: no limit yet.
    pub(crate) fn limit(&self, cores: u32) -> Option<u32> {
        if self.samples.load(Ordering::Relaxed) < WARM_UP {
            return None;
        }
        let cpu = self.cpu_us.load(Ordering::Relaxed);
        let own = self.own_us.load(Ordering::Relaxed);
        if cpu == 0 || own == 0 {
            return None;
        }
        let cores = f64::from(cores.max(1));
        let limit = cores * UTILIZATION * own as f64 / cpu as f64;
        // Never below two turns per core: a plugin that computes all the time
        // still gets its cores.
        Some((limit.min(f64::from(u32::MAX)) as u32).max(2 * cores as u32))
    }

    fn record(&self, wall_us: u64, cpu_us: u64, waited_us: u64) {
        if cpu_us == 0 {
            return;
        }
        average(&self.cpu_us, cpu_us);
        let own = wall_us.saturating_sub(waited_us);
        if (waited_us as f64) <= QUIET * wall_us as f64 {
            average(&self.own_us, own);
        } else if self.own_us.load(Ordering::Relaxed) == 0 {
            // Not a single quiet turn yet: the first figure will do.
            average(&self.own_us, own);
        }
        self.samples.fetch_add(1, Ordering::Relaxed);
    }
}

/// `into` moves an eighth of the way to `sample` (the first sample is taken
/// whole).
fn average(into: &AtomicU64, sample: u64) {
    let _ = into.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        Some(match old {
            0 => sample,
            old => old - old / 8 + sample / 8,
        })
    });
}

impl Drop for Paced {
    fn drop(&mut self) {
        self.pace.in_flight.fetch_sub(1, Ordering::AcqRel);
        let wall_us = self.started.elapsed().as_micros() as u64;
        let (cpu_us, waited_us) = self.time.spent();
        self.pace.record(wall_us, cpu_us, waited_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warmed(cpu_us: u64, own_us: u64) -> Arc<Pace> {
        let pace = Arc::new(Pace::default());
        for _ in 0..WARM_UP {
            pace.record(own_us, cpu_us, 0);
        }
        pace
    }

    #[test]
    fn a_costly_plugin_is_held_to_what_the_cores_carry() {
        // 10 ms of CPU per 1 s turn on 2 cores: 2 × 0.8 × 100 = 160 in flight.
        let pace = warmed(10_000, 1_000_000);
        assert_eq!(pace.limit(2), Some(160));
        let turns: Vec<Paced> = (0..160).map(|_| pace.start("py", 2).unwrap()).collect();
        let refused = pace.start("py", 2).err().expect("the 161st is refused");
        assert_eq!(refused.kind(), "busy");
        assert!(refused.to_string().contains("160 turns"), "{refused}");
        assert!(refused.to_string().contains("10.0 ms"), "{refused}");
        drop(turns);
        assert_eq!(pace.in_flight(), 0);
        assert!(pace.start("py", 2).is_ok(), "room again once they ended");
    }

    #[test]
    fn a_cheap_plugin_is_not_limited_below_any_socket_count() {
        // 0.2 ms of guest CPU per 1 s turn: 8,000 on 2 cores.
        assert_eq!(warmed(200, 1_000_000).limit(2), Some(8_000));
    }

    #[test]
    fn no_limit_before_the_warm_up_nor_without_cpu() {
        let pace = Arc::new(Pace::default());
        for _ in 0..WARM_UP - 1 {
            pace.record(1_000_000, 10_000, 0);
        }
        assert_eq!(pace.limit(2), None);
        let idle = Arc::new(Pace::default());
        for _ in 0..WARM_UP {
            idle.record(1_000_000, 0, 0);
        }
        assert_eq!(idle.limit(2), None, "turns that never ran guest code");
    }

    #[test]
    fn an_overload_does_not_raise_the_limit() {
        let pace = warmed(10_000, 1_000_000);
        // Turns stretched to 5 s by waiting 4.5 s for a core: `own` is kept.
        for _ in 0..100 {
            pace.record(5_000_000, 10_000, 4_500_000);
        }
        assert_eq!(pace.limit(2), Some(160));
    }

    #[test]
    fn a_plugin_that_computes_all_the_time_keeps_two_turns_per_core() {
        assert_eq!(warmed(1_000_000, 1_000_000).limit(2), Some(4));
    }
}
