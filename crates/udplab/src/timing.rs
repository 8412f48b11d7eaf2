//! How long the core waits, and how it tells the time. These sit below every other module
//! ([`platform`](crate::platform) included), so that no two modules import each other.

use std::time::{Duration, Instant, SystemTime};

/// The longest a [`Loop`](crate::endpoint::Loop) sleeps without looking at its deadline and stop flag again.
pub const TICK: Duration = Duration::from_millis(100);
/// The longest one send waits for room in the kernel's send buffer before it fails with
/// `EAGAIN` (`SO_SNDTIMEO`).
pub const SEND_WAIT: Duration = Duration::from_millis(500);

/// The wall-clock time of a monotonic instant, placed by its distance from `anchor` (an
/// instant and the wall clock read at that instant). With one anchor read once, two calls
/// agree, and a later step of the wall clock moves nothing already recorded.
pub fn wall_time(at: Instant, anchor: (Instant, SystemTime)) -> SystemTime {
    let (then, wall) = anchor;
    if at <= then {
        wall - (then - at)
    } else {
        wall + (at - then)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_time_places_an_instant_by_its_distance_from_the_anchor() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(wall_time(later, (t0, wall)), wall + Duration::from_secs(2));
        assert_eq!(wall_time(t0, (later, wall)), wall - Duration::from_secs(2));
    }
}
