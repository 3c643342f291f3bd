//! A request to stop, shared by a process's controllers: the daemon sets it
//! on SIGTERM or SIGINT, and every pass then stops at its next step (the
//! script running on a node ends first), so the daemon can wait for its
//! work on nodes to end before it gives up its locks and claims.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Stop {
    asked: AtomicBool,
    changed: Notify,
}

impl Stop {
    /// Asks every pass to stop at its next step; wakes whoever waits.
    pub fn ask(&self) {
        self.asked.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub fn asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }

    /// Returns once a stop is asked (at once when it already was).
    pub async fn wait(&self) {
        let notified = self.changed.notified();
        tokio::pin!(notified);
        // Registered before the check, so an `ask` between the two wakes it.
        notified.as_mut().enable();
        if self.asked() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiter_wakes_when_a_stop_is_asked_and_a_late_one_at_once() {
        let stop = Arc::new(Stop::default());
        assert!(!stop.asked());
        let waiting = tokio::spawn({
            let stop = stop.clone();
            async move { stop.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        stop.ask();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(stop.asked());
        tokio::time::timeout(Duration::from_secs(5), stop.wait())
            .await
            .expect("at once");
    }
}
