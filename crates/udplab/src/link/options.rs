//! Every option of a link with its allowed values, and the sentence a learner reads when a value
//! is outside them: the one place link options are checked. [`LinkConfig::validate`] checks a
//! whole configuration; Python and the `udplab link` command ask here too (through the
//! binding), and convert their numbers with [`Opt::seconds`] and [`Opt::whole`], so a value is
//! refused with the same words whichever way it came.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::fate::{Impairment, Loss, Way};
use super::relay::LinkConfig;

/// The longest `delay`, `jitter` and `idle`: a day. Longer is a mistake, and it keeps every
/// release time far inside what `Instant` can hold.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);
/// The slowest `rate`, bytes per second: one datagram's time on the wire then stays within a
/// day as well (65,535 s at most).
pub const MIN_RATE: f64 = 1.0;
/// The longest `spin`.
pub const MAX_SPIN: Duration = Duration::from_secs(1);

/// A value a link cannot work with, and why, naming the option (and the direction when only
/// one is wrong): `loss (down) must be a probability from 0 to 1, got 2`. The parts are there
/// for a caller that words it in another language (the `udplab` command in Chinese).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    option: &'static str,
    direction: Option<Way>,
    problem: Problem,
}

/// What is wrong with an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The value is not one the option allows.
    OutOfRange {
        /// What the option allows.
        allowed: Allowed,
        /// The value, as given.
        got: String,
    },
    /// `reorder` without a `delay`.
    ReorderNeedsDelay,
    /// A target with port 0.
    TargetPortZero {
        /// The target.
        target: SocketAddr,
    },
    /// A target that is the link's own address.
    TargetIsTheLink {
        /// The target.
        target: SocketAddr,
        /// Where the link listens.
        listen: SocketAddr,
    },
}

/// The values an option allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// A probability, from 0 to 1.
    Probability,
    /// Seconds, from 0 to `most`.
    Seconds {
        /// The most, in whole seconds.
        most: u64,
    },
    /// Seconds, more than 0 and at most `most`.
    PositiveSeconds {
        /// The most, in whole seconds.
        most: u64,
    },
    /// Bytes per second, at least `least` (or no rate, for no limit).
    Rate {
        /// The least.
        least: u64,
    },
    /// A whole number, at least `least` (up to what the machine counts).
    AtLeast {
        /// The least.
        least: u64,
    },
    /// A whole number from `least` to `most`.
    Between {
        /// The least.
        least: u64,
        /// The most.
        most: u64,
    },
}

impl OptionError {
    fn new(option: &'static str, problem: Problem) -> OptionError {
        OptionError {
            option,
            direction: None,
            problem,
        }
    }

    /// The option's name: `loss`, `delay`, `target`...
    pub fn option(&self) -> &'static str {
        self.option
    }

    /// The direction that is wrong, if only one is.
    pub fn direction(&self) -> Option<Way> {
        self.direction
    }

    /// What is wrong.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    fn in_direction(mut self, direction: Way) -> OptionError {
        self.direction = Some(direction);
        self
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.option)?;
        if let Some(direction) = self.direction {
            write!(f, " ({})", direction.name())?;
        }
        match &self.problem {
            Problem::OutOfRange { allowed, got } => write!(f, " must be {allowed}, got {got}"),
            Problem::ReorderNeedsDelay => f.write_str(
                " needs a delay: a reordered datagram is sent at once, ahead of the ones \
                 waiting out the delay; with delay 0 nothing waits, so nothing can be \
                 overtaken (netem refuses it too)",
            ),
            Problem::TargetPortZero { target } => {
                write!(
                    f,
                    " {target} has port 0: give the port the server listens on"
                )
            }
            Problem::TargetIsTheLink { target, listen } => write!(
                f,
                " {target} is the link's own address (it listens on {listen}): it would relay \
                 every datagram to itself, round and round for ever; give the address of the \
                 server the clients should reach"
            ),
        }
    }
}

impl std::error::Error for OptionError {}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = |most: u64| match most {
            1 => "1 second".to_owned(),
            86_400 => "86400 seconds (a day)".to_owned(),
            s => format!("{s} seconds"),
        };
        match *self {
            Allowed::Probability => f.write_str("a probability from 0 to 1"),
            Allowed::Seconds { most } => write!(f, "from 0 to {}", seconds(most)),
            Allowed::PositiveSeconds { most } => {
                write!(f, "more than 0 and at most {}", seconds(most))
            }
            Allowed::Rate { least } => write!(
                f,
                "at least {least} {} per second (no rate: no limit)",
                if least == 1 { "byte" } else { "bytes" }
            ),
            Allowed::AtLeast { least } => write!(f, "a whole number, at least {least}"),
            Allowed::Between { least, most } => {
                write!(f, "a whole number from {least} to {most}")
            }
        }
    }
}

impl Allowed {
    fn takes(self, value: f64) -> bool {
        match self {
            Allowed::Probability => (0.0..=1.0).contains(&value),
            Allowed::Seconds { most } => value.is_finite() && value >= 0.0 && value <= most as f64,
            Allowed::PositiveSeconds { most } => {
                value.is_finite() && value > 0.0 && value <= most as f64
            }
            Allowed::Rate { least } => value.is_finite() && value >= least as f64,
            Allowed::AtLeast { .. } | Allowed::Between { .. } => {
                value.fract() == 0.0 && self.takes_whole(value as i128)
            }
        }
    }

    fn takes_whole(self, value: i128) -> bool {
        match self {
            // Counts end where the machine's do.
            Allowed::AtLeast { least } => value >= least.into() && value <= usize::MAX as i128,
            Allowed::Between { least, most } => value >= least.into() && value <= most.into(),
            _ => false,
        }
    }
}

/// A link option that takes a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// `loss`: the probability of independent loss.
    Loss,
    /// The Gilbert-Elliott model's `p` (good to bad).
    LossP,
    /// Its `r` (bad to good).
    LossR,
    /// Its `1-h` (loss in the bad state).
    LossOneMinusH,
    /// Its `1-k` (loss in the good state).
    LossOneMinusK,
    /// `duplicate`.
    Duplicate,
    /// `reorder`.
    Reorder,
    /// `corrupt`.
    Corrupt,
    /// `delay`, seconds.
    Delay,
    /// `jitter`, seconds.
    Jitter,
    /// `rate`, bytes per second.
    Rate,
    /// `limit`, copies waiting per direction.
    Limit,
    /// `seed`.
    Seed,
    /// `max_clients`.
    MaxClients,
    /// `idle`, seconds.
    Idle,
    /// `history`, events kept.
    History,
    /// `spin`, seconds.
    Spin,
}

impl Opt {
    /// The option's name, as Python and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            Opt::Loss => "loss",
            Opt::LossP => "loss p",
            Opt::LossR => "loss r",
            Opt::LossOneMinusH => "loss one_minus_h",
            Opt::LossOneMinusK => "loss one_minus_k",
            Opt::Duplicate => "duplicate",
            Opt::Reorder => "reorder",
            Opt::Corrupt => "corrupt",
            Opt::Delay => "delay",
            Opt::Jitter => "jitter",
            Opt::Rate => "rate",
            Opt::Limit => "limit",
            Opt::Seed => "seed",
            Opt::MaxClients => "max_clients",
            Opt::Idle => "idle",
            Opt::History => "history",
            Opt::Spin => "spin",
        }
    }

    /// The values the option allows.
    pub fn allowed(self) -> Allowed {
        match self {
            Opt::Loss
            | Opt::LossP
            | Opt::LossR
            | Opt::LossOneMinusH
            | Opt::LossOneMinusK
            | Opt::Duplicate
            | Opt::Reorder
            | Opt::Corrupt => Allowed::Probability,
            Opt::Delay | Opt::Jitter => Allowed::Seconds {
                most: MAX_DELAY.as_secs(),
            },
            Opt::Idle => Allowed::PositiveSeconds {
                most: MAX_DELAY.as_secs(),
            },
            Opt::Spin => Allowed::Seconds {
                most: MAX_SPIN.as_secs(),
            },
            Opt::Rate => Allowed::Rate {
                least: MIN_RATE as u64,
            },
            Opt::Limit | Opt::MaxClients => Allowed::AtLeast { least: 1 },
            Opt::History => Allowed::AtLeast { least: 0 },
            Opt::Seed => Allowed::Between {
                least: 0,
                most: u64::MAX,
            },
        }
    }

    fn refuse(self, got: String) -> OptionError {
        let allowed = self.allowed();
        OptionError::new(self.name(), Problem::OutOfRange { allowed, got })
    }

    /// Checks a number (a probability, seconds, a rate, a count).
    pub fn check(self, value: f64) -> Result<(), OptionError> {
        if self.allowed().takes(value) {
            Ok(())
        } else {
            Err(self.refuse(number(value)))
        }
    }

    fn check_duration(self, value: Duration) -> Result<(), OptionError> {
        self.check(value.as_secs_f64())
    }

    fn check_count(self, value: usize) -> Result<(), OptionError> {
        self.whole(value as i128).map(|_| ())
    }

    /// Seconds given as a number, as a `Duration`, if within the option's range.
    pub fn seconds(self, value: f64) -> Result<Duration, OptionError> {
        self.check(value)?;
        // Within the range, so finite, not negative and at most a day.
        Ok(Duration::from_secs_f64(value))
    }

    /// A whole number given as any integer, if within the option's range (a count's range
    /// ends at `usize::MAX`).
    pub fn whole(self, value: i128) -> Result<u64, OptionError> {
        if self.allowed().takes_whole(value) {
            Ok(value as u64)
        } else {
            Err(self.refuse(value.to_string()))
        }
    }
}

/// A number as a learner wrote it: `2` rather than `2.0`, `1e300` rather than 301 digits.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{}", value as i64)
    } else {
        format!("{value:?}")
    }
}

impl Loss {
    fn validate(&self) -> Result<(), OptionError> {
        match *self {
            Loss::Random(p) => Opt::Loss.check(p),
            Loss::GilbertElliott {
                p,
                r,
                one_minus_h,
                one_minus_k,
            } => {
                Opt::LossP.check(p)?;
                Opt::LossR.check(r)?;
                Opt::LossOneMinusH.check(one_minus_h)?;
                Opt::LossOneMinusK.check(one_minus_k)
            }
        }
    }
}

impl Impairment {
    /// Checks every value; the error names the option.
    pub fn validate(&self) -> Result<(), OptionError> {
        self.loss.validate()?;
        Opt::Duplicate.check(self.duplicate)?;
        Opt::Reorder.check(self.reorder)?;
        Opt::Corrupt.check(self.corrupt)?;
        Opt::Delay.check_duration(self.delay)?;
        Opt::Jitter.check_duration(self.jitter)?;
        if let Some(rate) = self.rate {
            Opt::Rate.check(rate)?;
        }
        Opt::Limit.check_count(self.limit)?;
        if self.reorder > 0.0 && self.delay.is_zero() {
            return Err(OptionError::new("reorder", Problem::ReorderNeedsDelay));
        }
        Ok(())
    }
}

/// Both directions' results of one check, as one: the error names the direction when only one
/// is wrong (both wrong alike, as when one value was given for both: no direction; wrong
/// differently: the first, up).
pub fn both<T>(
    up: Result<T, OptionError>,
    down: Result<T, OptionError>,
) -> Result<(T, T), OptionError> {
    match (up, down) {
        (Ok(up), Ok(down)) => Ok((up, down)),
        (Err(up), Err(down)) if up == down => Err(up),
        (Err(up), _) => Err(up.in_direction(Way::Up)),
        (_, Err(down)) => Err(down.in_direction(Way::Down)),
    }
}

impl LinkConfig {
    /// Checks every value; the error names the option, and the direction as [`both`] does.
    pub fn validate(&self) -> Result<(), OptionError> {
        both(self.up.validate(), self.down.validate())?;
        Opt::MaxClients.check_count(self.max_clients)?;
        Opt::History.check_count(self.history)?;
        Opt::Idle.check_duration(self.idle)?;
        Opt::Spin.check_duration(self.spin)
    }
}

/// Refuses a `target` with port 0, or one that is the link's own address: every datagram
/// would be relayed to the link itself, again and again, for ever (and each time from a new
/// upstream socket, a new client). `listen` is the address asked for or, once bound, the real one; a port 0 (not
/// bound yet) cannot be compared, and is checked again once bound.
///
/// Own address: the same address and port; or a link listening on the wildcard address
/// (`0.0.0.0`, `::`) and a target on that port at any address of this machine, IPv4 ones
/// included for an IPv6 wildcard that takes IPv4 too (`dual_stack`, the system's default
/// when `None`). IPv4 written as IPv6 (`::ffff:127.0.0.1`) is IPv4, and the unspecified
/// address as a target is this machine's loopback (where a datagram sent to it arrives).
pub fn check_target(
    listen: SocketAddr,
    target: SocketAddr,
    dual_stack: Option<bool>,
) -> Result<(), OptionError> {
    let dual_stack = dual_stack.unwrap_or_else(|| {
        socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)
            .and_then(|s| s.only_v6())
            .is_ok_and(|v6_only| !v6_only)
    });
    if target.port() == 0 {
        return Err(OptionError::new(
            "target",
            Problem::TargetPortZero { target },
        ));
    }
    let this_machine = |ip: IpAddr| UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok();
    if loops_back(listen, target, dual_stack, this_machine) {
        return Err(OptionError::new(
            "target",
            Problem::TargetIsTheLink { target, listen },
        ));
    }
    Ok(())
}

/// Whether a datagram sent to `target` arrives at a socket bound to `listen`; `local` says
/// whether an address belongs to this machine. No system call: the rule alone.
pub(crate) fn loops_back(
    listen: SocketAddr,
    target: SocketAddr,
    dual_stack: bool,
    local: impl Fn(IpAddr) -> bool,
) -> bool {
    if listen.port() == 0 || listen.port() != target.port() {
        return false;
    }
    let to = match target.ip().to_canonical() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => to.is_ipv4() && local(to),
        IpAddr::V6(ip) if ip.is_unspecified() => (to.is_ipv6() || dual_stack) && local(to),
        ip => ip.to_canonical() == to,
    }
}

#[cfg(test)]
mod tests;
