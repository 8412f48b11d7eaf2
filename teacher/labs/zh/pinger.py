"""实验 1，ping 程序：参考答案（供教师使用，见 teacher/README.zh-CN.md）。

评分：``udplab grade pinger teacher/labs/zh/pinger.py``（或 ``--reference``）。
"""

import time

# RFC 6298 的常量，其中最小值和最大值按回环地址缩小了（2.4 节要求 1 秒，2.5 节允许 60 秒或更多：往返只要几毫秒的 ping 实验，大部分时间会花在等待上）。
ALPHA = 1 / 8
BETA = 1 / 4
K = 4
G = 0.001
INITIAL_RTO = 0.5
MIN_RTO = 0.1
MAX_RTO = 2.0

MAX_DATAGRAM = 65535


class RttEstimator:
    """RFC 6298 的往返时间估计器，以及由它得出的超时时间（RTO）。"""

    def __init__(self):
        self.srtt = None
        self.rttvar = None
        self.rto = INITIAL_RTO

    def sample(self, rtt):
        if self.srtt is None:  # 第一次测量，(2.2)
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:  # (2.3)：先算 RTTVAR，用的是旧的 SRTT
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - rtt)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * rtt
        self.rto = min(max(self.srtt + max(G, K * self.rttvar), MIN_RTO), MAX_RTO)  # (2.4), (2.5)

    def timed_out(self):
        self.rto = min(2 * self.rto, MAX_RTO)  # (5.5)：退避


def ping(sock, server, count, estimator):
    rtts = []
    for seq in range(count):
        message = b"ping %d" % seq  # 有了序号，才能把这个 ping 的回显和迟到的回显区分开
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
    """``message`` 回来的时刻（``time.monotonic()``）；在 ``deadline`` 之前没回来则返回 None。其间收到的其他数据报（之前某个 ping 迟到或重复的回显，或者损坏的回显）读出后跳过。"""
    while True:
        # 时间到了以后，已经在等着的数据报仍然算数：机器繁忙时，这个线程可能在一个及时到达的回显之后才被唤醒。
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

