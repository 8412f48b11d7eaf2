"""Lab 1, the pinger: a reference solution (for teachers; see teacher/README.md).

Grade it with ``udplab grade pinger teacher/labs/pinger.py`` (or ``--reference``).
"""

import time

# RFC 6298's constants, with its minimum and maximum scaled down to loopback (section 2.4 asks
# for 1 s and section 2.5 allows 60 s or more: a lab of pings a few milliseconds long would spend
# most of its time waiting).
ALPHA = 1 / 8
BETA = 1 / 4
K = 4
G = 0.001
INITIAL_RTO = 0.5
MIN_RTO = 0.1
MAX_RTO = 2.0

MAX_DATAGRAM = 65535


class RttEstimator:
    """The round-trip time estimator of RFC 6298 and the timeout (RTO) it gives."""

    def __init__(self):
        self.srtt = None
        self.rttvar = None
        self.rto = INITIAL_RTO

    def sample(self, rtt):
        if self.srtt is None:  # the first measurement, (2.2)
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:  # (2.3): RTTVAR first, from the old SRTT
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - rtt)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * rtt
        self.rto = min(max(self.srtt + max(G, K * self.rttvar), MIN_RTO), MAX_RTO)  # (2.4), (2.5)

    def timed_out(self):
        self.rto = min(2 * self.rto, MAX_RTO)  # (5.5): back off


def ping(sock, server, count, estimator):
    rtts = []
    for seq in range(count):
        message = b"ping %d" % seq  # the number tells this ping's echo from a late one
        sent = time.monotonic()
        sock.sendto(message, server)
        arrived = wait_for_echo(sock, message, sent + estimator.rto)
        if arrived is None:
            estimator.timed_out()
            rtts.append(None)
        else:
            rtts.append(arrived - sent)
            estimator.sample(arrived - sent)
    return rtts


def wait_for_echo(sock, message, deadline):
    """When ``message`` came back (``time.monotonic()``), or None if not before ``deadline``.
    Anything else that arrives meanwhile (a late or duplicated echo of an earlier ping, or a
    corrupted one) is read and skipped."""
    while True:
        # Once the time is up, a datagram already waiting still counts: on a busy machine this
        # thread can wake up late, after an echo that came in time.
        sock.settimeout(max(deadline - time.monotonic(), 0))
        try:
            data = sock.recv(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return None
        if data == message:
            return time.monotonic()


def summarize(rtts):
    answered = [rtt for rtt in rtts if rtt is not None]
    sent = len(rtts)
    return {
        "sent": sent,
        "received": len(answered),
        "loss": (sent - len(answered)) / sent if sent else 0.0,
        "min": min(answered) if answered else None,
        "avg": sum(answered) / len(answered) if answered else None,
        "max": max(answered) if answered else None,
    }

