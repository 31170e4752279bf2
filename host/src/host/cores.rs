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
//! ([`TurnError::Overloaded`], HTTP 503 `busy`) while `queue` or more guests
//! already wait for a core: past what the CPU can carry, callers learn it early
//! and the turns admitted keep their latency.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::TurnError;

/// How long a computing guest keeps its core before the next in line gets it.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// The host's cores, shared by every plugin's turns.
pub(crate) struct Cores {
    permits: Arc<Semaphore>,
    /// Polls waiting for a permit right now.
    waiting: Arc<AtomicU32>,
    queue: u32,
}

impl Cores {
    /// `running` guest polls at once (at least 1); new turns refused while
    /// `queue` wait (0: never refused).
    pub(crate) fn new(running: u32, queue: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(running.max(1) as usize)),
            waiting: Arc::default(),
            queue,
        }
    }

    /// Whether a new turn may start.
    pub(crate) fn admit(&self) -> Result<(), TurnError> {
        let waiting = self.waiting.load(Ordering::Relaxed);
        if self.queue > 0 && waiting >= self.queue {
            return Err(TurnError::Overloaded { waiting });
        }
        Ok(())
    }

    /// Guest polls waiting for a core right now.
    pub(crate) fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// `work` polled only while holding a core. `computing` is set by the guest's
    /// epoch callback when it yields only to let others run (so the core is
    /// kept), and cleared here.
    pub(crate) fn run<F: Future>(&self, work: F, computing: Arc<AtomicBool>) -> OnCore<F> {
        OnCore {
            permits: self.permits.clone(),
            waiting: self.waiting.clone(),
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
    waiting: Arc<AtomicU32>,
    /// Set while waiting for a permit (counted in `waiting`).
    acquire: Option<Acquire>,
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
                    Ok(permit) => permit,
                    Err(_) => {
                        this.waiting.fetch_add(1, Ordering::Relaxed);
                        let permits = this.permits.clone();
                        this.acquire = Some(Box::pin(async move {
                            // Never closed: the semaphore lives as long as the host.
                            permits
                                .acquire_owned()
                                .await
                                .expect("cores are never closed")
                        }));
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
        let Some(acquire) = self.acquire.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready(permit) = acquire.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        self.acquire = None;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
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
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_is_refused_while_the_queue_is_full_and_admitted_once_it_drains() {
        let cores = Cores::new(1, 1);
        assert!(cores.admit().is_ok());
        // One poll holds the only core while a second waits for it.
        let holder = cores.permits.clone().try_acquire_owned().unwrap();
        let waiter = tokio::spawn(cores.run(async { 7 }, Arc::default()));
        while cores.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = cores.admit().unwrap_err();
        assert_eq!(refused.kind(), "busy");
        assert!(refused.to_string().contains("1 turns wait"), "{refused}");
        drop(holder);
        assert_eq!(waiter.await.unwrap(), 7);
        assert_eq!(cores.waiting(), 0);
        assert!(cores.admit().is_ok());
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue() {
        let cores = Cores::new(1, 4);
        let holder = cores.permits.clone().try_acquire_owned().unwrap();
        let waiter = tokio::spawn(cores.run(std::future::pending::<()>(), Arc::default()));
        while cores.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(cores.waiting(), 0);
        drop(holder);
    }
}
