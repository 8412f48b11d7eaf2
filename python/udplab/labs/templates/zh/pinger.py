"""实验 1：带自适应超时的 ping 程序。

把下面四处标着 TODO 的地方补全（补全之前，每一处都会抛出 NotImplementedError），然后给这个文件评分：

    udplab grade pinger pinger.py              # 种子 1-10，每一级都测
    udplab grade pinger pinger.py --tier sanity --seeds 1   # 先快速试一次

评分程序会启动一个 UDP 回显服务器（收到的每个数据报都原样发回给发送方），放在一条 udplab.Link 后面；这条链路会丢包、重复、乱序、延迟，还会损坏数据报。评分程序调用你的 ping()，传入一个套接字、链路的地址、次数和一个新建的 RttEstimator。

名字和参数保持原样：评分程序要调用它们。
"""

import time

# RFC 6298 的两个增益和系数（第 2 节），以及时钟粒度 G，单位都是秒。
ALPHA = 1 / 8
BETA = 1 / 4
K = 4
G = 0.001
# RFC 6298 的初始值是 1 秒（2.1），小于 1 秒的 RTO 要取成 1 秒（2.4），上限可以是 60 秒或更多（2.5）。
# 在回环地址上，一次往返只要几毫秒，所以实验把它们按比例缩小了。
# 不要改动这些值：评分程序按它们检查你的估计器。
INITIAL_RTO = 0.5
MIN_RTO = 0.1
MAX_RTO = 2.0

MAX_DATAGRAM = 65535  # 能装下最大数据报的缓冲区，回显就不会被截断


class RttEstimator:
    """RFC 6298 的往返时间估计器（https://www.rfc-editor.org/rfc/rfc6298）。"""

    def __init__(self):
        self.srtt = None  # 平滑往返时间，秒（第一个样本之前为 None）
        self.rttvar = None  # 往返时间的波动，秒（第一个样本之前为 None）
        self.rto = INITIAL_RTO  # 等回显的超时时间，秒

    def sample(self, rtt):
        """测得一次 ``rtt`` 秒的往返：更新 srtt、rttvar 和 rto。

        第一个样本 R：srtt = R，rttvar = R / 2（2.2）。之后的样本 R 按这个顺序更新：先 rttvar = (1 - BETA) * rttvar + BETA * |srtt - R|，再 srtt = (1 - ALPHA) * srtt + ALPHA * R（2.3）。两种情况之后都令 rto = srtt + max(G, K * rttvar)，再把它限制在 MIN_RTO 和 MAX_RTO 之间（2.4、2.5）。
        """
        # TODO：替换下一行。
        raise NotImplementedError("RttEstimator.sample() 由你来写")

    def timed_out(self):
        """在 rto 之内没有等到回显：退避（5.5），rto = 2 * rto，最多 MAX_RTO。"""
        # TODO：替换下一行。
        raise NotImplementedError("RttEstimator.timed_out() 由你来写")


def ping(sock, server, count, estimator):
    """从 UDP 套接字 ``sock`` 向地址 ``server`` 一个接一个地发送 ``count`` 个 ping，返回一个列表：每个 ping 的往返时间（秒），没有及时等到回显的 ping 记为 None。

    - 每个 ping 的字节各不相同，例如第 7 个 ping 是 b"ping 7"，这样才能把它的回显和别的 ping 的回显区分开。
    - 等它的回显最多 estimator.rto 秒（sock.settimeout、time.monotonic）。只有和发出的 ping 完全相同的数据报才是它的回显：其间收到的其他数据报（之前某个 ping 迟到或重复的回显，或者损坏的回显）都跳过，在剩下的时间里继续等。
    - 等到回显之后调用 estimator.sample(rtt)；超时之后调用 estimator.timed_out()。
    """
    # TODO：替换下一行。
    raise NotImplementedError("ping() 由你来写")


def summarize(rtts):
    """ping() 返回的列表的汇总：一个字典，包含 "sent"（发了几个 ping）、"received"（收到几个回显）、"loss"（没有回显的比例，0 到 1），以及往返时间的 "min"、"avg" 和 "max"（一个回显都没有时，这三项都是 None）。"""
    # TODO：替换下一行。
    raise NotImplementedError("summarize() 由你来写")
