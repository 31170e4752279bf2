//! Admission to the cores: how many turns run guest code at once, and how many
//! may wait for a core before new turns are refused.
//!
//! A turn spends most of its time waiting (on its model, on the store), and
//! while it waits it needs no core. Guest code, though, is CPU: a Python turn
//! costs milliseconds of it. Left to the async runtime, every turn whose guest
//! is ready to run sits in the runtime's run queue, ahead of the store client's
//! replies; past what the cores can carry that queue grows without bound, every
//! turn slows down together and store calls time out while the store is idle.
//!
//! So a turn's guest (instantiation, `handle`) runs only while it holds one of
//! `running` permits (one per core by default). It keeps its permit while it
//! computes, across the yields of the epoch tick, for up to a slice of
//! [`SLICE`], and gives it back as soon as it waits on something outside (its
//! model, the store) or its slice is over, going to the back of the line. Turns
//! waiting for a permit are parked, not queued in the runtime, so the runtime's
//! queue holds at most `running` guests and what else the host does (store
//! replies, HTTP) keeps moving. And a new turn is refused at once
//! ([`TurnError::Overloaded`], HTTP 503 `busy`) while guests wait in line and
//! the last one to get a core had waited longer than `max_delay`: past what the
//! CPU can carry, callers learn it early and the turns admitted keep their
//! latency. (A bound on the line's length instead refused Rust turns whose
//! polls take microseconds when the line was long but quick: measured, it cut
//! Rust at C=1024 from 1.0 to 0.12 of ideal.)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::TurnError;

/// How long a computing guest keeps its core before the next in line gets it.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// The host's cores, shared by every plugin's turns.
pub(crate) struct Cores {
    permits: Arc<Semaphore>,
    line: Arc<Line>,
    max_delay: Duration,
}

/// Who waits for a core, and for how long the last one did.
#[derive(Default)]
struct Line {
    /// Polls waiting for a permit right now.
    waiting: AtomicU32,
    /// How long the last poll to get a permit waited for it, in microseconds (0
    /// when it got one at once).
    delay_us: AtomicU64,
}

impl Cores {
    /// `running` guest polls at once (at least 1); new turns refused while the
    /// line's delay is over `max_delay` (zero: never refused).
    pub(crate) fn new(running: u32, max_delay: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(running.max(1) as usize)),
            line: Arc::default(),
            max_delay,
        }
    }

    /// Whether a new turn may start.
    pub(crate) fn admit(&self) -> Result<(), TurnError> {
        let delay = self.delay();
        if self.max_delay.is_zero() || self.waiting() == 0 || delay <= self.max_delay {
            return Ok(());
        }
        Err(TurnError::Overloaded {
            delay_ms: delay.as_millis() as u64,
            limit_ms: self.max_delay.as_millis() as u64,
        })
    }

    /// Guest polls waiting for a core right now.
    pub(crate) fn waiting(&self) -> u32 {
        self.line.waiting.load(Ordering::Relaxed)
    }

    /// How long the last guest poll to get a core waited for it.
    pub(crate) fn delay(&self) -> Duration {
        Duration::from_micros(self.line.delay_us.load(Ordering::Relaxed))
    }

    /// `work` polled only while holding a core. `computing` is set by the guest's
    /// epoch callback when it yields only to let others run (so the core is
    /// kept), and cleared here.
    pub(crate) fn run<F: Future>(&self, work: F, computing: Arc<AtomicBool>) -> OnCore<F> {
        OnCore {
            permits: self.permits.clone(),
            line: self.line.clone(),
            acquire: None,
            held: None,
            computing,
            work: Box::pin(work),
        }
    }
}

type Acquire = Pin<Box<dyn Future<Output = OwnedSemaphorePermit> + Send>>;

/// A future polled only while it holds one of the host's cores.
pub(crate) struct OnCore<F> {
    permits: Arc<Semaphore>,
    line: Arc<Line>,
    /// Set while waiting for a permit (counted in `waiting`), with since when.
    acquire: Option<(Acquire, Instant)>,
    /// The permit held across compute yields, and since when.
    held: Option<(OwnedSemaphorePermit, Instant)>,
    computing: Arc<AtomicBool>,
    work: Pin<Box<F>>,
}

impl<F: Future> Future for OnCore<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if this.held.is_none() {
            let permit = match this.acquire.as_mut() {
                // Free permits exist only while nobody waits (the semaphore hands a
                // released permit to its first waiter): this never jumps the line.
                None => match this.permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        this.line.delay_us.store(0, Ordering::Relaxed);
                        permit
                    }
                    Err(_) => {
                        this.line.waiting.fetch_add(1, Ordering::Relaxed);
                        let permits = this.permits.clone();
                        let acquire: Acquire = Box::pin(async move {
                            // Never closed: the semaphore lives as long as the host.
                            permits
                                .acquire_owned()
                                .await
                                .expect("cores are never closed")
                        });
                        this.acquire = Some((acquire, Instant::now()));
                        return this.wait(cx);
                    }
                },
                Some(_) => return this.wait(cx),
            };
            this.held = Some((permit, Instant::now()));
        }
        this.poll_work(cx)
    }
}

impl<F: Future> OnCore<F> {
    /// Waits in line for a permit, then polls the work with it.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some((acquire, since)) = self.acquire.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready(permit) = acquire.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let waited = since.elapsed().as_micros() as u64;
        self.acquire = None;
        self.line.waiting.fetch_sub(1, Ordering::Relaxed);
        self.line.delay_us.store(waited, Ordering::Relaxed);
        self.held = Some((permit, Instant::now()));
        self.poll_work(cx)
    }

    /// Polls the work with the permit held; keeps it only while the work computes
    /// within its slice.
    fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.computing.store(false, Ordering::Relaxed);
        let done = self.work.as_mut().poll(cx);
        let computing = self.computing.swap(false, Ordering::Relaxed);
        let within_slice = self
            .held
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() < SLICE);
        if done.is_ready() || !computing || !within_slice {
            self.held = None;
        }
        done
    }
}

impl<F> Drop for OnCore<F> {
    fn drop(&mut self) {
        if self.acquire.is_some() {
            self.line.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_the_line() {
        let cores = Cores::new(1, Duration::from_millis(1));
        let holder = cores.permits.clone().try_acquire_owned().unwrap();
        let waiter = tokio::spawn(cores.run(std::future::pending::<()>(), Arc::default()));
        while cores.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(cores.waiting(), 0);
        // Nobody waits: a new turn is admitted whatever the last delay was.
        cores.line.delay_us.store(1_000_000, Ordering::Relaxed);
        assert!(cores.admit().is_ok());
        drop(holder);
    }

    #[test]
    fn a_long_line_refuses_new_turns_and_names_its_delay() {
        let cores = Cores::new(1, Duration::from_millis(50));
        cores.line.waiting.store(3, Ordering::Relaxed);
        cores.line.delay_us.store(20_000, Ordering::Relaxed);
        assert!(
            cores.admit().is_ok(),
            "a line shorter than the limit admits"
        );
        cores.line.delay_us.store(80_000, Ordering::Relaxed);
        let refused = cores.admit().unwrap_err();
        assert_eq!(refused.kind(), "busy");
        assert!(refused.to_string().contains("80 ms"), "{refused}");
        let unlimited = Cores::new(1, Duration::ZERO);
        unlimited.line.waiting.store(3, Ordering::Relaxed);
        unlimited.line.delay_us.store(80_000, Ordering::Relaxed);
        assert!(unlimited.admit().is_ok(), "zero never refuses");
    }
}
