//! The dice and the queues with fabricated time: no socket, no sleeping.

use super::*;
use proptest::prelude::*;

fn client(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn imp() -> Impairment {
    Impairment::default()
}

/// The fates of `n` datagrams of `len` bytes.
fn fates(imp: &Impairment, seed: u64, direction: Way, n: usize, len: usize) -> Vec<Fate> {
    let mut dice = Dice::new(seed, direction);
    (0..n).map(|_| dice.roll(imp, len)).collect()
}

/// Takes every copy due by `now`, marking each sent, and returns their payloads.
fn drain(lane: &mut Lane, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(copy) = lane.pop_due(now) {
        out.push(copy.data.clone());
        lane.sent(copy, true);
    }
    out
}

#[test]
fn a_perfect_link_forwards_everything_at_once_in_order() {
    let t0 = Instant::now();
    let mut lane = Lane::new(imp(), 1, Way::Up);
    for i in 0..10u8 {
        lane.admit(&[i], client(1), t0);
    }
    assert_eq!(lane.next_due(), Some(t0));
    let got = drain(&mut lane, t0);
    assert_eq!(got, (0..10u8).map(|i| vec![i]).collect::<Vec<_>>());
    let s = lane.stats();
    assert_eq!((s.received, s.forwarded, s.forwarded_bytes), (10, 10, 10));
    assert!(s.balanced());
}

#[test]
fn probabilities_match_over_many_datagrams() {
    let imp = Impairment {
        loss: Loss::Random(0.2),
        duplicate: 0.1,
        corrupt: 0.05,
        reorder: 0.3,
        delay: ms(10),
        ..Impairment::default()
    };
    let n = 100_000;
    let f = fates(&imp, 42, Way::Up, n, 100);
    let share = |count: usize| count as f64 / n as f64;
    let lost = f.iter().filter(|f| f.lost).count();
    let dup = f.iter().filter(|f| f.duplicated()).count();
    let copies: Vec<CopyFate> = f
        .iter()
        .flat_map(|f| f.copies.into_iter().flatten())
        .collect();
    let corrupt = copies.iter().filter(|c| c.flip.is_some()).count();
    let reordered = copies.iter().filter(|c| c.reordered).count();
    assert!((share(lost) - 0.2).abs() < 0.01, "lost {lost}");
    // Duplication is decided for survivors only.
    assert!(
        (dup as f64 / (n - lost) as f64 - 0.1).abs() < 0.01,
        "dup {dup}"
    );
    assert!((corrupt as f64 / copies.len() as f64 - 0.05).abs() < 0.005);
    assert!((reordered as f64 / copies.len() as f64 - 0.3).abs() < 0.01);
    assert!(copies.iter().all(|c| c.reordered == c.delay.is_zero()));
}

#[test]
fn zero_and_one_are_never_and_always() {
    let never = fates(&imp(), 3, Way::Up, 1000, 10);
    assert!(never.iter().all(|f| !f.lost && !f.duplicated()));
    let always = Impairment {
        duplicate: 1.0,
        corrupt: 1.0,
        ..imp()
    };
    let f = fates(&always, 3, Way::Up, 1000, 10);
    assert!(f
        .iter()
        .all(|f| f.duplicated() && f.copies.iter().flatten().all(|c| c.flip.is_some())));
    let all_lost = Impairment {
        loss: Loss::Random(1.0),
        ..imp()
    };
    assert!(fates(&all_lost, 3, Way::Up, 1000, 10)
        .iter()
        .all(|f| f.lost));
}

#[test]
fn corruption_flips_exactly_one_bit_and_never_touches_an_empty_datagram() {
    let imp = Impairment {
        corrupt: 1.0,
        ..imp()
    };
    let t0 = Instant::now();
    let mut lane = Lane::new(imp, 9, Way::Down);
    let data = vec![0u8; 64];
    for _ in 0..200 {
        lane.admit(&data, client(2), t0);
        lane.admit(&[], client(2), t0);
    }
    let got = drain(&mut lane, t0);
    for d in got.iter().filter(|d| !d.is_empty()) {
        let flipped: u32 = d.iter().map(|b| b.count_ones()).sum();
        assert_eq!(flipped, 1);
    }
    // Every bit position can be hit: the flips spread over the datagram.
    let bytes: std::collections::HashSet<usize> = got
        .iter()
        .filter_map(|d| d.iter().position(|&b| b != 0))
        .collect();
    assert!(bytes.len() > 40, "{} distinct bytes", bytes.len());
    assert_eq!(lane.stats().corrupted, 200);
}

#[test]
fn delay_and_jitter_stay_within_bounds() {
    let imp = Impairment {
        delay: ms(20),
        jitter: ms(5),
        ..imp()
    };
    let f = fates(&imp, 5, Way::Up, 10_000, 10);
    let delays: Vec<Duration> = f.iter().map(|f| f.copies[0].unwrap().delay).collect();
    assert!(delays.iter().all(|d| (ms(15)..=ms(25)).contains(d)));
    let mean = delays.iter().map(Duration::as_secs_f64).sum::<f64>() / delays.len() as f64;
    assert!((mean - 0.020).abs() < 0.0005, "mean {mean}");
    // A jitter larger than the delay never gives a negative delay.
    let wide = Impairment {
        delay: ms(1),
        jitter: ms(10),
        ..imp
    };
    let f = fates(&wide, 5, Way::Up, 1000, 10);
    assert!(f.iter().any(|f| f.copies[0].unwrap().delay.is_zero()));
}

#[test]
fn delayed_copies_leave_at_their_time_and_reordered_ones_overtake() {
    let imp = Impairment {
        delay: ms(100),
        reorder: 0.5,
        ..imp()
    };
    let t0 = Instant::now();
    let mut lane = Lane::new(imp.clone(), 11, Way::Up);
    let f = fates(&imp, 11, Way::Up, 20, 1);
    for i in 0..20u8 {
        lane.admit(&[i], client(1), t0 + ms(u64::from(i)));
    }
    // Reordered ones were due on arrival; nothing else before t0 + 100 ms.
    let early = drain(&mut lane, t0 + ms(99));
    let expected: Vec<Vec<u8>> = (0..20u8)
        .filter(|&i| f[usize::from(i)].copies[0].unwrap().reordered)
        .map(|i| vec![i])
        .collect();
    assert!(!expected.is_empty() && expected.len() < 20);
    assert_eq!(early, expected);
    let first_delayed = (0..20u64).find(|&i| !f[i as usize].copies[0].unwrap().reordered);
    assert_eq!(lane.next_due(), first_delayed.map(|i| t0 + ms(100 + i)));
    let late = drain(&mut lane, t0 + ms(200));
    assert_eq!(early.len() + late.len(), 20);
    assert!(
        late.windows(2).all(|w| w[0] < w[1]),
        "delayed copies keep their order"
    );
    let s = lane.stats();
    assert_eq!(s.reordered as usize, early.len());
    assert_eq!(s.delayed as usize, late.len());
}

#[test]
fn rate_paces_copies_and_a_full_queue_drops_the_tail() {
    // 1000 bytes/s, 100-byte datagrams: one every 100 ms; room for 3.
    let imp = Impairment {
        rate: Some(1000.0),
        limit: 3,
        ..imp()
    };
    let t0 = Instant::now();
    let mut lane = Lane::new(imp, 1, Way::Up);
    for _ in 0..5 {
        lane.admit(&[0; 100], client(1), t0);
    }
    let s = lane.stats();
    assert_eq!((s.queued, s.queue_dropped), (3, 2));
    assert_eq!(lane.next_due(), Some(t0 + ms(100)));
    assert_eq!(drain(&mut lane, t0 + ms(150)).len(), 1);
    assert_eq!(lane.next_due(), Some(t0 + ms(200)));
    // Room again: the next one queues behind the ones waiting.
    lane.admit(&[0; 100], client(1), t0 + ms(150));
    assert_eq!(drain(&mut lane, t0 + ms(399)).len(), 2);
    assert_eq!(lane.next_due(), Some(t0 + ms(400)));
    assert!(lane.stats().balanced());
}

#[test]
fn rate_after_an_idle_spell_starts_from_now() {
    let imp = Impairment {
        rate: Some(1000.0),
        delay: ms(10),
        ..imp()
    };
    let t0 = Instant::now();
    let mut lane = Lane::new(imp, 1, Way::Up);
    lane.admit(&[0; 10], client(1), t0);
    assert_eq!(lane.next_due(), Some(t0 + ms(20)));
    drain(&mut lane, t0 + ms(20));
    lane.admit(&[0; 10], client(1), t0 + ms(1000));
    assert_eq!(lane.next_due(), Some(t0 + ms(1020)));
}

#[test]
fn gilbert_elliott_loses_in_bursts_with_netem_meaning() {
    // p = 1%, r = 10%: bad 1/11 of the time, losing everything there (1-h = 1), nothing in
    // the good state (1-k = 0): loss 9.1 %, in bursts of mean length 1/r = 10.
    let imp = Impairment {
        loss: Loss::gemodel(0.01, Some(0.1), None, None),
        ..imp()
    };
    let f = fates(&imp, 8, Way::Up, 200_000, 10);
    let lost = f.iter().filter(|f| f.lost).count() as f64 / f.len() as f64;
    assert!((lost - 1.0 / 11.0).abs() < 0.01, "loss {lost}");
    let mut bursts = Vec::new();
    let mut run = 0;
    for f in &f {
        if f.lost {
            run += 1;
        } else if run > 0 {
            bursts.push(run);
            run = 0;
        }
    }
    let mean = bursts.iter().sum::<usize>() as f64 / bursts.len() as f64;
    assert!((mean - 10.0).abs() < 1.0, "mean burst {mean}");
    // With only p given, netem's defaults make it Bernoulli: r = 1 - p, 1-h = 1, 1-k = 0.
    assert_eq!(
        Loss::gemodel(0.3, None, None, None),
        Loss::GilbertElliott {
            p: 0.3,
            r: 0.7,
            one_minus_h: 1.0,
            one_minus_k: 0.0
        }
    );
    let bern = Impairment {
        loss: Loss::gemodel(0.3, None, None, None),
        ..imp
    };
    let f = fates(&bern, 8, Way::Up, 100_000, 10);
    let lost = f.iter().filter(|f| f.lost).count() as f64 / f.len() as f64;
    assert!((lost - 0.3).abs() < 0.01, "loss {lost}");
}

#[test]
fn directions_and_seeds_draw_different_numbers() {
    let imp = Impairment {
        loss: Loss::Random(0.5),
        ..imp()
    };
    let lost = |seed, dir| -> Vec<bool> {
        fates(&imp, seed, dir, 200, 1)
            .iter()
            .map(|f| f.lost)
            .collect()
    };
    assert_eq!(lost(1, Way::Up), lost(1, Way::Up));
    assert_ne!(lost(1, Way::Up), lost(1, Way::Down));
    assert_ne!(lost(1, Way::Up), lost(2, Way::Up));
}

#[test]
fn refused_and_socketless_datagrams_are_counted_apart_and_balance() {
    let t0 = Instant::now();
    let mut link = Impairer::new(imp(), imp(), 1, 100);
    link.refuse(Outcome::Refused, b"abc", client(1), t0);
    link.refuse(Outcome::SocketError, b"abcd", client(2), t0);
    link.refuse(Outcome::SocketError, b"abcde", client(3), t0);
    let [up, down] = link.stats();
    assert_eq!((up.received, up.refused, up.socket_errors), (3, 1, 2));
    assert!(up.balanced() && down == LaneStats::default());
    let names: Vec<String> = link.events().map(|e| e.outcome.name()).collect();
    assert_eq!(names, ["refused", "socket_error", "socket_error"]);
}

#[test]
fn admit_says_how_many_copies_wait() {
    let t0 = Instant::now();
    let twice = Impairment {
        duplicate: 1.0,
        ..imp()
    };
    let mut link = Impairer::new(twice, Impairment { limit: 1, ..imp() }, 1, 100);
    assert_eq!(link.admit(Way::Up, b"a", client(1), t0), 2);
    assert_eq!(link.admit(Way::Down, b"b", client(1), t0), 1);
    assert_eq!(link.admit(Way::Down, b"c", client(1), t0), 0); // the queue is full
    let lost = Impairment {
        loss: Loss::Random(1.0),
        ..imp()
    };
    let mut link = Impairer::new(lost.clone(), lost, 1, 100);
    assert_eq!(link.admit(Way::Up, b"a", client(1), t0), 0);
}

#[test]
fn history_is_bounded_and_names_each_fate() {
    let imp = Impairment {
        loss: Loss::Random(0.3),
        duplicate: 0.3,
        ..imp()
    };
    let t0 = Instant::now();
    let mut link = Impairer::new(imp.clone(), imp, 4, 50);
    for _ in 0..100 {
        link.admit(Way::Up, b"x", client(1), t0);
        while let Some(copy) = link.pop_due(Way::Up, t0) {
            link.sent(Way::Up, copy, true, t0);
        }
    }
    let names: Vec<String> = link.events().map(|e| e.outcome.name()).collect();
    assert_eq!(names.len(), 50);
    assert!(names.iter().any(|n| n == "lost"));
    assert!(names.iter().any(|n| n == "forwarded+duplicate"));
    assert!(names.iter().any(|n| n == "forwarded"));
    assert_eq!(
        Outcome::Forwarded {
            duplicate: true,
            reordered: true,
            corrupted: true
        }
        .name(),
        "forwarded+duplicate+reordered+corrupted"
    );
}

/// A send pattern: per datagram, its length, how long after the previous one it arrives
/// (µs), and whether its send fails.
fn pattern() -> impl Strategy<Value = Vec<(usize, u64, bool)>> {
    proptest::collection::vec(
        (0usize..300, 0u64..3000, proptest::bool::weighted(0.05)),
        0..300,
    )
}

fn any_impairment() -> impl Strategy<Value = Impairment> {
    (
        0.0..=1.0f64,
        0.0..=1.0f64,
        0.0..=1.0f64,
        0.0..=1.0f64,
        0u64..5,
        0u64..3,
        proptest::option::of(1000.0..1e6f64),
        1usize..20,
        proptest::bool::ANY,
    )
        .prop_map(
            |(loss, duplicate, reorder, corrupt, delay, jitter, rate, limit, ge)| {
                let delay = ms(delay);
                Impairment {
                    loss: if ge {
                        Loss::gemodel(loss, Some(0.3), Some(0.8), Some(0.05))
                    } else {
                        Loss::Random(loss)
                    },
                    duplicate,
                    reorder: if delay.is_zero() { 0.0 } else { reorder },
                    corrupt,
                    delay,
                    jitter: ms(jitter),
                    rate,
                    limit,
                }
            },
        )
}

/// Runs `pattern` through a lane, taking due copies every `poll` µs of fabricated time (and
/// at the end, after stop); returns the fates in order and the final counters.
fn run(
    imp: &Impairment,
    seed: u64,
    pattern: &[(usize, u64, bool)],
    pace: u64,
) -> (Vec<Fate>, LaneStats) {
    let t0 = Instant::now();
    let mut lane = Lane::new(imp.clone(), seed, Way::Up);
    let mut dice = Dice::new(seed, Way::Up);
    let mut now = t0;
    let mut fails = pattern.iter().map(|p| p.2).cycle();
    let mut fate = Vec::new();
    for &(len, gap, _) in pattern {
        now += Duration::from_micros(gap * pace);
        while let Some(copy) = lane.pop_due(now) {
            let ok = !fails.next().unwrap_or(false);
            lane.sent(copy, ok);
        }
        lane.admit(&vec![7u8; len], client(1), now);
        fate.push(dice.roll(imp, len));
        assert!(lane.stats().balanced());
        assert!(lane.stats().queued as usize <= imp.limit);
    }
    lane.flush();
    (fate, lane.stats())
}

proptest! {
    /// The fates do not depend on the pace: the same datagrams at any speed lose, duplicate,
    /// corrupt, reorder and delay the same ones (only queue drops may differ).
    #[test]
    fn same_seed_same_fates_at_any_pace(
        imp in any_impairment(), seed in any::<u64>(), pattern in pattern(), pace in 0u64..50,
    ) {
        let (a, sa) = run(&imp, seed, &pattern, 1);
        let (b, sb) = run(&imp, seed, &pattern, pace);
        prop_assert_eq!(a, b);
        prop_assert_eq!((sa.lost, sa.duplicated, sa.corrupted, sa.reordered, sa.delayed),
                        (sb.lost, sb.duplicated, sb.corrupted, sb.reordered, sb.delayed));
    }

    /// Every datagram is accounted for, at every step and after stop.
    #[test]
    fn accounting_identity_holds(
        imp in any_impairment(), seed in any::<u64>(), pattern in pattern(), pace in 0u64..50,
    ) {
        let (fates, s) = run(&imp, seed, &pattern, pace);
        prop_assert!(s.balanced(), "{:?}", s);
        prop_assert_eq!(s.queued, 0);
        prop_assert_eq!(s.received as usize, pattern.len());
        prop_assert_eq!(s.lost as usize, fates.iter().filter(|f| f.lost).count());
    }
}

/// A seed must replay the same run on any machine and after any update of the generator
/// crate: these are seed 7's first 32 decisions at loss 0.5, written down once.
#[test]
fn seed_seven_replays_the_recorded_losses() {
    let imp = Impairment {
        loss: Loss::Random(0.5),
        ..imp()
    };
    let pattern: String = fates(&imp, 7, Way::Up, 32, 1)
        .iter()
        .map(|f| if f.lost { 'x' } else { '.' })
        .collect();
    assert_eq!(pattern, "x.xx.x...x.x..x.x.x...x...x..xxx");
}
