//! Exponential backoff with jitter, shared by every retry loop.

use std::time::Duration;

/// Doubling delays from `initial` up to `max`, each stretched by 0–10 %
/// at random so that many helpers restarted together do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait now; later calls return longer ones.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base + base.mul_f64(fastrand::f64() * 0.1)
    }

    /// Back to the initial delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// Sleeps for `d` unless `token` is cancelled first; true when cancelled.
pub async fn sleep_or_cancel(token: &tokio_util::sync::CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = token.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_at_most_ten_percent_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let expected = [100, 200, 400, 500, 500];
        for ms in expected {
            let d = b.next_delay();
            let base = Duration::from_millis(ms);
            assert!(d >= base && d <= base.mul_f64(1.1), "{d:?} vs {base:?}");
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(111));
    }
    #[tokio::test]
    async fn sleep_or_cancel_tells_whether_it_was_cancelled() {
        let token = tokio_util::sync::CancellationToken::new();
        assert!(!sleep_or_cancel(&token, Duration::from_millis(1)).await);
        token.cancel();
        let cancelled = tokio::time::timeout(
            Duration::from_secs(60),
            sleep_or_cancel(&token, Duration::from_secs(3600)),
        )
        .await
        .expect("returns at once when cancelled");
        assert!(cancelled);
    }
}
