"""实验 4：选择重传（Selective Repeat），链路会丢包、重复、乱序、损坏和延迟数据报。

把下面两处标着 TODO 的地方补全（补全之前，每一处都会抛出 NotImplementedError），然后给这个文件评分：

    udplab grade selective-repeat selective_repeat.py
    udplab grade selective-repeat selective_repeat.py --tier sanity --seeds 1   # 先快速试一次

评分程序在同一个进程的两个线程里同时运行你的 receive() 和 send()，两个 UDP 套接字之间隔着一条 udplab.Link；receive() 返回的字节和交给 send() 的字节完全相同，并且两个函数都已返回，才算通过。评分时给两个函数都传入 window=8；笔记本 8 会试别的窗口大小。

send() 和 receive() 的名字和参数保持原样：评分程序要调用它们。其余部分（分组格式、常量、辅助函数）可以随意修改。
"""

import struct
import time

WINDOW = 8  # 已发送但尚未确认的分组最多几个；接收方也最多缓存这么多
TIMEOUT = 0.1  # 超过这么多秒，未确认的分组就要重传（每个分组有自己的定时器）
PAYLOAD = 1000  # 每个分组携带的数据字节数
FIN_TRIES = 8  # 结束分组最多发送几次，之后不再等它的确认
MAX_DATAGRAM = 65535  # 能装下最大数据报的缓冲区，数据报就不会被截断

# 一个分组由首部和载荷组成。首部依次是：类型（1 个字节：数据、确认，或者传输结束，TCP 把结束叫作 FIN）、序号（4 个字节：0、1、2……），以及对类型、序号和载荷计算的校验和（2 个字节）。
DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")


def checksum(data):
    """互联网校验和（RFC 1071），和实验 2 相同。"""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def make_packet(kind, seq, payload=b""):
    return HEADER.pack(kind, seq, checksum(kind + seq.to_bytes(4, "big") + payload)) + payload


def parse_packet(packet):
    """返回 ``(kind, seq, payload)``；分组已损坏或者不是本协议的分组时返回 None。"""
    if len(packet) < HEADER.size:
        return None
    kind, seq, check = HEADER.unpack_from(packet)
    payload = packet[HEADER.size:]
    if kind not in (DATA, ACK, FIN) or checksum(packet[:5] + payload) != check:
        return None
    return kind, seq, payload


def send(sock, peer, data, window=WINDOW):
    """从 UDP 套接字 ``sock`` 把字节串 ``data`` 可靠地发送到地址 ``peer``，同时在途的分组最多 ``window`` 个，全部送达之后返回。

    - 把 ``data`` 切成每块 PAYLOAD 字节：DATA 分组的序号依次为 0、1、2……
    - 记住 ``base``，即最早的尚未确认的分组；序号小于 base + window 而还没发过的分组都发出去。
    - 携带 n 的 ACK 只确认分组 n 这一个。跳过损坏的分组（parse_packet() 返回 None），以及已经确认过的分组的 ACK。把 base 移过所有已确认的分组。
    - 每个已发送而未确认的分组都有自己的定时器，时长 TIMEOUT 秒：一直等到最先到期的那个定时器（sock.settimeout、time.monotonic），到期时只重传那一个分组，并重新启动它的定时器。
    - 所有分组都确认之后，发送序号为 len(packets) 的 FIN，直到收到它的 ACK（携带 len(packets)）；但试过 FIN_TRIES 次之后就直接返回：receive() 返回以后，再也没有人确认它了。
    """
    # TODO：替换下一行。
    raise NotImplementedError("send() 由你来写")


def receive(sock, window=WINDOW):
    """接收 send() 发到已绑定的 UDP 套接字 ``sock`` 的数据，FIN 到达时按顺序返回全部字节。

    - 跳过损坏的分组（parse_packet() 返回 None）。
    - 记住 ``expected``，即下一个要交付的分组的序号（一开始是 0）；比它先到的分组要缓存起来，序号最大到 ``expected + window - 1``，再往后的一律忽略。
    - 序号小于 expected + window 的每个完好分组都要确认：回一个携带它自己序号的 ACK，发回它来的地址（sock.recvfrom 会给出这个地址）。序号小于 ``expected`` 的分组也要确认：它重复到来，正是因为第一次的 ACK 丢了。
    - 每当缓存了序号为 ``expected`` 的分组，就把它以及紧随其后、没有缺口的缓存分组依次交付，``expected`` 随之前移。
    - 收到序号为 ``expected`` 的 FIN：先确认它，再返回全部字节。
    """
    # TODO：替换下一行。
    raise NotImplementedError("receive() 由你来写")
