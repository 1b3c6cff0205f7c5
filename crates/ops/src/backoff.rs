//! The wait between attempts of every retry loop: it doubles from a first wait up to a
//! ceiling, so a blip costs a fraction of a second while a long outage is asked at most once
//! per ceiling, not hammered.

use std::time::Duration;

/// A doubling backoff: `first`, `2 × first`, … up to `max`, then `max` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            current: first,
        }
    }

    /// The wait before the next attempt.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// The longest wait it grows to.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Returns the wait before the next attempt, and doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.current;
        self.grow();
        wait
    }

    /// Doubles the wait (up to the ceiling): the last attempt made no progress.
    pub fn grow(&mut self) {
        self.current = self.current.saturating_mul(2).min(self.max);
    }

    /// Back to the first wait: the last attempt made progress.
    pub fn reset(&mut self) {
        self.current = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_and_starts_over_after_progress() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(500));
        let waits: Vec<Duration> = (0..5).map(|_| backoff.next_wait()).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(500), ms(500)]);
        assert_eq!(backoff.max(), ms(500));
        backoff.reset();
        assert_eq!(backoff.current(), ms(100));
    }
}
