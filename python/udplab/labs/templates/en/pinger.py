"""Lab 1: a pinger with an adaptive timeout.

Fill in the four places marked TODO (each raises NotImplementedError until you do), then grade
this file:

    udplab grade pinger pinger.py              # every tier on seeds 1-10
    udplab grade pinger pinger.py --tier sanity --seeds 1   # a first quick try

The grader starts a UDP echo server (it sends every datagram back to its sender, as it came)
behind a udplab.Link that loses, duplicates, reorders, delays and damages datagrams, and calls
your ping() with a socket, the link's address, a count and a fresh RttEstimator.

Keep the names and arguments as they are: the grader calls them.
"""

import time

# RFC 6298's gains and factor (section 2), and the clock granularity G, in seconds.
ALPHA = 1 / 8
BETA = 1 / 4
K = 4
G = 0.001
# RFC 6298 starts at 1 s (2.1), rounds a smaller RTO up to 1 s (2.4) and allows a maximum of 60 s
# or more (2.5). On loopback, where a round trip takes milliseconds, the lab scales them down.
# Do not change them: the grader holds your estimator to these values.
INITIAL_RTO = 0.5
MIN_RTO = 0.1
MAX_RTO = 2.0

MAX_DATAGRAM = 65535  # a buffer for the largest datagram, so that no echo is cut short


class RttEstimator:
    """The round-trip time estimator of RFC 6298 (https://www.rfc-editor.org/rfc/rfc6298)."""

    def __init__(self):
        self.srtt = None  # the smoothed round-trip time, seconds (None before the first sample)
        self.rttvar = None  # its variation, seconds (None before the first sample)
        self.rto = INITIAL_RTO  # how long to wait for an echo, seconds

    def sample(self, rtt):
        """A round trip of ``rtt`` seconds was measured: update srtt, rttvar and rto.

        The first sample R sets srtt = R and rttvar = R / 2 (2.2). A later one R sets, in this
        order, rttvar = (1 - BETA) * rttvar + BETA * |srtt - R|, then srtt = (1 - ALPHA) * srtt
        + ALPHA * R (2.3). After either, rto = srtt + max(G, K * rttvar), then kept within
        MIN_RTO and MAX_RTO (2.4, 2.5).
        """
        # TODO: replace the next line.
        raise NotImplementedError("RttEstimator.sample() is yours to write")

    def timed_out(self):
        """No echo came within rto: back off (5.5), rto = 2 * rto, at most MAX_RTO."""
        # TODO: replace the next line.
        raise NotImplementedError("RttEstimator.timed_out() is yours to write")


def ping(sock, server, count, estimator):
    """Send ``count`` pings from the UDP socket ``sock`` to the address ``server``, one at a
    time, and return a list with each one's round-trip time in seconds, or None for a ping that
    got no echo in time.

    - Give each ping its own bytes, for example b"ping 7" for ping 7, so that its echo can be
      told apart from the echo of another ping.
    - Wait for its echo at most estimator.rto seconds (sock.settimeout, time.monotonic).
      Only a datagram equal to the ping you sent is its echo: skip anything else that arrives
      meanwhile (a late or duplicated echo of an earlier ping, or a damaged one) and keep
      waiting for the rest of the time.
    - After an echo, call estimator.sample(rtt); after a timeout, estimator.timed_out().
    """
    # TODO: replace the next line.
    raise NotImplementedError("ping() is yours to write")


def summarize(rtts):
    """A summary of a list returned by ping(): a dict with "sent" (how many pings), "received"
    (how many were echoed), "loss" (the share not echoed, from 0 to 1), and "min", "avg" and
    "max" of the round-trip times (None for each when nothing was echoed)."""
    # TODO: replace the next line.
    raise NotImplementedError("summarize() is yours to write")
