//! The checks and their messages; the rule for a target that is the link itself.

use super::*;

fn err(config: &LinkConfig) -> String {
    config.validate().unwrap_err().to_string()
}

#[test]
fn every_message_names_the_option_its_range_and_the_value() {
    let cases: [(Opt, f64, &str); 8] = [
        (
            Opt::Loss,
            1.5,
            "loss must be a probability from 0 to 1, got 1.5",
        ),
        (
            Opt::Corrupt,
            f64::NAN,
            "corrupt must be a probability from 0 to 1, got NaN",
        ),
        (
            Opt::Delay,
            -1.0,
            "delay must be from 0 to 86400 seconds (a day), got -1",
        ),
        (
            Opt::Jitter,
            1e300,
            "jitter must be from 0 to 86400 seconds (a day), got 1e300",
        ),
        (
            Opt::Idle,
            0.0,
            "idle must be more than 0 and at most 86400 seconds (a day), got 0",
        ),
        (Opt::Spin, 2.0, "spin must be from 0 to 1 second, got 2"),
        (
            Opt::Rate,
            0.5,
            "rate must be at least 1 byte per second (no rate: no limit), got 0.5",
        ),
        (
            Opt::Limit,
            1.5,
            "limit must be a whole number, at least 1, got 1.5",
        ),
    ];
    for (opt, value, message) in cases {
        assert_eq!(opt.check(value).unwrap_err().to_string(), message);
    }
    assert_eq!(
        Opt::MaxClients.whole(0).unwrap_err().to_string(),
        "max_clients must be a whole number, at least 1, got 0"
    );
    assert_eq!(
        Opt::Seed.whole(-1).unwrap_err().to_string(),
        "seed must be a whole number from 0 to 18446744073709551615, got -1"
    );
    assert_eq!(Opt::Seed.whole(u64::MAX.into()), Ok(u64::MAX));
    assert_eq!(Opt::History.whole(0), Ok(0));
}

#[test]
fn the_edges_of_each_range_are_allowed() {
    for (opt, value) in [
        (Opt::Loss, 0.0),
        (Opt::Loss, 1.0),
        (Opt::Delay, 0.0),
        (Opt::Delay, 86_400.0),
        (Opt::Idle, 1e-9),
        (Opt::Spin, 1.0),
        (Opt::Rate, 1.0),
    ] {
        assert_eq!(opt.check(value), Ok(()), "{opt:?} {value}");
    }
    assert_eq!(Opt::Delay.seconds(0.25), Ok(Duration::from_millis(250)));
    assert!(Opt::Delay.seconds(86_400.001).is_err());
    assert!(Opt::Spin.seconds(f64::INFINITY).is_err());
}

#[test]
fn a_config_names_the_direction_only_when_one_is_wrong() {
    let mut config = LinkConfig::new(1);
    config.down.loss = Loss::Random(2.0);
    assert_eq!(
        err(&config),
        "loss (down) must be a probability from 0 to 1, got 2"
    );
    config.up.loss = Loss::Random(2.0); // as one value for both directions gives
    assert_eq!(
        err(&config),
        "loss must be a probability from 0 to 1, got 2"
    );
    config.up.loss = Loss::Random(3.0); // both wrong, differently: the first
    assert_eq!(
        err(&config),
        "loss (up) must be a probability from 0 to 1, got 3"
    );
    let mut config = LinkConfig::new(1);
    config.up.reorder = 0.5;
    assert!(err(&config).starts_with("reorder (up) needs a delay: "));
    config.up.loss = Loss::gemodel(0.1, Some(1.5), None, None);
    assert_eq!(
        err(&config),
        "loss r (up) must be a probability from 0 to 1, got 1.5"
    );
}

#[test]
fn an_impairment_checks_every_value() {
    let bad = |imp: Impairment| imp.validate().unwrap_err().to_string();
    let day = MAX_DELAY;
    let ok = Impairment {
        delay: day,
        jitter: day,
        reorder: 0.1,
        rate: Some(MIN_RATE),
        ..Impairment::default()
    };
    assert_eq!(ok.validate(), Ok(()));
    for (imp, start) in [
        (
            Impairment {
                delay: day + Duration::from_secs(1),
                ..ok.clone()
            },
            "delay must be from 0 to 86400 seconds (a day), got 86401",
        ),
        (
            Impairment {
                jitter: Duration::from_secs(u64::MAX),
                ..ok.clone()
            },
            "jitter must be from 0",
        ),
        (
            Impairment {
                rate: Some(f64::INFINITY),
                ..ok.clone()
            },
            "rate must be at least 1 byte per second (no rate: no limit), got inf",
        ),
        (
            Impairment {
                rate: Some(1e-300),
                ..ok.clone()
            },
            "rate must be at least 1",
        ),
        (
            Impairment {
                duplicate: -0.5,
                ..ok.clone()
            },
            "duplicate must be a probability from 0 to 1, got -0.5",
        ),
        (
            Impairment {
                limit: 0,
                ..ok.clone()
            },
            "limit must be a whole number, at least 1, got 0",
        ),
        (
            Impairment {
                delay: Duration::ZERO,
                ..ok.clone()
            },
            "reorder needs a delay: ",
        ),
    ] {
        let message = bad(imp);
        assert!(message.starts_with(start), "{message}");
    }
}

#[test]
fn a_config_checks_its_own_options() {
    let mut config = LinkConfig::new(1);
    config.spin = Duration::from_millis(1001);
    assert_eq!(err(&config), "spin must be from 0 to 1 second, got 1.001");
    config.spin = Duration::ZERO;
    config.idle = Duration::ZERO;
    assert!(err(&config).starts_with("idle must be more than 0"));
    config.idle = Duration::from_secs(1);
    config.max_clients = 0;
    assert_eq!(
        err(&config),
        "max_clients must be a whole number, at least 1, got 0"
    );
    config.max_clients = 1;
    config.history = 0;
    assert_eq!(config.validate(), Ok(()));
}

fn at(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// This machine, as the rule sees it: loopback and 192.0.2.2.
fn here(ip: IpAddr) -> bool {
    ip.is_loopback() || ip == IpAddr::from([192, 0, 2, 2])
}

#[test]
fn a_target_loops_back_to_its_own_socket() {
    let yes = [
        ("127.0.0.1:9000", "127.0.0.1:9000", false),
        ("0.0.0.0:9000", "127.0.0.1:9000", false),
        ("0.0.0.0:9000", "127.0.0.53:9000", false),
        ("0.0.0.0:9000", "192.0.2.2:9000", false),
        ("0.0.0.0:9000", "0.0.0.0:9000", false),
        ("127.0.0.1:9000", "0.0.0.0:9000", false),
        ("[::1]:9000", "[::]:9000", false),
        ("[::]:9000", "[::1]:9000", false),
        ("[::]:9000", "127.0.0.1:9000", true),
        ("[::]:9000", "[::ffff:127.0.0.1]:9000", true),
        ("127.0.0.1:9000", "[::ffff:127.0.0.1]:9000", false),
        ("[::ffff:127.0.0.1]:9000", "127.0.0.1:9000", false),
    ];
    for (listen, target, dual) in yes {
        assert!(
            loops_back(at(listen), at(target), dual, here),
            "{listen} {target}"
        );
    }
    let no = [
        ("127.0.0.1:9000", "127.0.0.1:9001", true),
        ("127.0.0.1:0", "127.0.0.1:0", true), // not bound yet: looked at again once bound
        ("127.0.0.1:9000", "127.0.0.2:9000", true),
        ("0.0.0.0:9000", "192.0.2.9:9000", true),
        ("0.0.0.0:9000", "[::1]:9000", true),
        ("[::]:9000", "127.0.0.1:9000", false), // IPv6 only
        ("[::1]:9000", "127.0.0.1:9000", true),
    ];
    for (listen, target, dual) in no {
        assert!(
            !loops_back(at(listen), at(target), dual, here),
            "{listen} {target}"
        );
    }
}

#[test]
fn check_target_names_both_addresses() {
    let e = check_target(at("0.0.0.0:9000"), at("127.0.0.1:9000"), None).unwrap_err();
    assert_eq!(e.option(), "target");
    assert!(e.to_string().starts_with(
        "target 127.0.0.1:9000 is the link's own address (it listens on 0.0.0.0:9000)"
    ));
    assert_eq!(
        check_target(at("0.0.0.0:9000"), at("203.0.113.7:9000"), None),
        Ok(())
    );
}
