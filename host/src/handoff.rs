//! A bounded queue from one thread to another that wakes a sender waiting on a full queue only once
//! the queue has drained to half. With `std::sync::mpsc::sync_channel` a reader that runs ahead of
//! its consumer blocks on every chunk and is woken after each one is taken: a system call for the
//! consumer (and, on a virtual machine, an interrupt between cores) per batch. Here it is woken once
//! per half a queue.

use std::collections::VecDeque;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Creates a queue of at most `capacity` items (at least 2): the sending half and the receiving one.
pub(crate) fn handoff<T>(capacity: usize) -> (Giver<T>, Taker<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(capacity.max(2)),
            giver_gone: false,
            taker_gone: false,
            giver_waiting: false,
            taker_waiting: false,
        }),
        capacity: capacity.max(2),
        not_empty: Condvar::new(),
        drained: Condvar::new(),
    });
    (
        Giver {
            shared: Arc::clone(&shared),
        },
        Taker { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// The taker waits here for an item.
    not_empty: Condvar,
    /// The giver waits here for the queue to drain to half.
    drained: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    giver_gone: bool,
    taker_gone: bool,
    giver_waiting: bool,
    taker_waiting: bool,
}

impl<T> Shared<T> {
    /// The state, even if a thread panicked holding it: the queue's invariants hold between any
    /// two of its statements.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sending half.
pub(crate) struct Giver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Giver<T> {
    /// Queues `item`, waiting while the queue is full; gives it back if the taker is gone.
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        if state.items.len() >= shared.capacity {
            state.giver_waiting = true;
            while state.items.len() > shared.capacity / 2 && !state.taker_gone {
                state = shared
                    .drained
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            state.giver_waiting = false;
        }
        if state.taker_gone {
            return Err(item);
        }
        state.items.push_back(item);
        if state.taker_waiting {
            shared.not_empty.notify_one();
        }
        Ok(())
    }
}

impl<T> Drop for Giver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.giver_gone = true;
        self.shared.not_empty.notify_one();
    }
}

/// The receiving half.
pub(crate) struct Taker<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Taker<T> {
    /// The next item, waiting at most `timeout` for one; `Disconnected` once the giver is gone and
    /// every item it sent was taken.
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let shared = &*self.shared;
        // Read the clock only when there is nothing to take: most calls find an item waiting.
        let mut deadline = None;
        let mut state = shared.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                if state.giver_waiting && state.items.len() <= shared.capacity / 2 {
                    shared.drained.notify_one();
                }
                return Ok(item);
            }
            if state.giver_gone {
                return Err(RecvTimeoutError::Disconnected);
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            state.taker_waiting = true;
            state = shared
                .not_empty
                .wait_timeout(state, left)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            state.taker_waiting = false;
        }
    }
}

impl<T> Drop for Taker<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.taker_gone = true;
        state.items.clear();
        self.shared.drained.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_across_threads() {
        let (giver, taker) = handoff(4);
        let sending = std::thread::spawn(move || {
            for item in 0..10_000 {
                assert!(giver.send(item).is_ok());
            }
        });
        let mut next = 0;
        loop {
            match taker.recv_timeout(Duration::from_secs(10)) {
                Ok(item) => {
                    assert_eq!(item, next);
                    next += 1;
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stalled at {next}"),
            }
        }
        assert_eq!(next, 10_000);
        assert!(sending.join().is_ok());
    }

    #[test]
    fn a_full_queue_waits_and_a_gone_taker_frees_the_giver() {
        let (giver, taker) = handoff(2);
        assert!(giver.send(1).is_ok() && giver.send(2).is_ok());
        let sending = std::thread::spawn(move || giver.send(3));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!sending.is_finished(), "a full queue holds the giver");
        drop(taker);
        assert_eq!(sending.join().ok(), Some(Err(3)));
    }

    #[test]
    fn an_empty_queue_times_out_and_a_gone_giver_ends_it() {
        let (giver, taker) = handoff::<u8>(2);
        assert_eq!(
            taker.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(giver.send(7).is_ok());
        drop(giver);
        assert_eq!(taker.recv_timeout(Duration::from_millis(10)), Ok(7));
        assert_eq!(
            taker.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Disconnected)
        );
    }
}
