//! Log lines about trouble that can repeat many times a second (a flood of refused clients, a
//! failing send): one line per kind and second, and how many like it were held back. Shared by
//! the chat server and the link.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The least time between two log lines about the same kind of trouble.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Lets one line through per key and second, and says how many were held back.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    last: HashMap<(&'static str, i64), (Instant, u64)>,
}

impl RateLimit {
    /// Returns `Some(suppressed since the last line)` when a line may be logged now.
    pub(crate) fn allow(&mut self, key: (&'static str, i64), now: Instant) -> Option<u64> {
        match self.last.get_mut(&key) {
            Some((at, held)) if now.saturating_duration_since(*at) < LOG_EVERY => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                self.last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// The tail of a rate-limited log line: how many like it were held back.
pub(crate) fn held_note(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} more like it since the last report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_one_line_per_second() {
        let mut limit = RateLimit::default();
        let t0 = Instant::now();
        assert_eq!(limit.allow(("x", 1), t0), Some(0));
        assert_eq!(limit.allow(("x", 1), t0 + Duration::from_millis(10)), None);
        assert_eq!(
            limit.allow(("x", 2), t0 + Duration::from_millis(10)),
            Some(0)
        );
        assert_eq!(limit.allow(("x", 1), t0 + Duration::from_secs(1)), Some(1));
    }
}
