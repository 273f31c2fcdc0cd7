//! Exponential backoff with jitter, shared by every retry loop.

use std::time::Duration;

/// Doubling delays from `initial` up to `max`, each stretched by 0–10 %
/// at random so that many helpers restarted together do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// The most a delay is stretched, as a fraction of it.
    jitter: f64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
            jitter: 0.1,
        }
    }

    /// Doubling delays without jitter, for a schedule that must match
    /// another program's exactly (the pid-file retries).
    pub fn exact(initial: Duration, max: Duration) -> Self {
        Self {
            jitter: 0.0,
            ..Self::new(initial, max)
        }
    }

    /// The delay to wait now; later calls return longer ones.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base + base.mul_f64(fastrand::f64() * self.jitter)
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
        let mut exact = Backoff::exact(Duration::from_millis(100), Duration::from_secs(60));
        let delays: Vec<u128> = (0..4).map(|_| exact.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
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
