"""实验 2：停止等待协议（交替位协议），链路会丢包、重复、损坏和延迟数据报。

把下面三处标着 TODO 的地方补全（补全之前，每一处都会抛出 NotImplementedError），然后给这个文件评分：

    udplab grade stop-and-wait stop_and_wait.py
    udplab grade stop-and-wait stop_and_wait.py --tier sanity --seeds 1   # 先快速试一次

评分程序在同一个进程的两个线程里同时运行你的 receive() 和 send()，两个 UDP 套接字之间隔着一条 udplab.Link；receive() 返回的字节和交给 send() 的字节完全相同，并且两个函数都已返回，才算通过。

send() 和 receive() 的名字和参数保持原样：评分程序要调用它们。其余部分（分组格式、常量、辅助函数）可以随意修改。
"""

import struct
import time

TIMEOUT = 0.1  # 等确认的秒数，超时就重传这个分组
PAYLOAD = 1000  # 每个分组携带的数据字节数
FIN_TRIES = 8  # 结束分组最多发送几次，之后不再等它的确认
MAX_DATAGRAM = 65535  # 能装下最大数据报的缓冲区，数据报就不会被截断

# 一个分组由首部和载荷组成。首部依次是：类型（1 个字节：数据、确认，或者传输结束，TCP 把结束叫作 FIN）、序号（4 个字节；这里只取 0 或 1，也就是交替位），以及对类型、序号和载荷计算的校验和（2 个字节）。
DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")


def checksum(data):
    """``data`` 的互联网校验和（RFC 1071），也就是 UDP 首部里的那一个：把字节按大端序分成 16 位的字（长度为奇数时补一个零字节），全部相加，把进位加回低 16 位（总和超过 16 位时反复执行 total = (total & 0xFFFF) + (total >> 16)），最后返回结果的反码（~total & 0xFFFF）。数据中任意一位翻转，校验和都会改变。"""
    # TODO：替换下一行。
    raise NotImplementedError("checksum() 由你来写")


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


def send(sock, peer, data):
    """从 UDP 套接字 ``sock`` 把字节串 ``data`` 可靠地发送到地址 ``peer``，全部送达之后返回。

    - 把 ``data`` 切成每块 PAYLOAD 字节，每块作为一个 DATA 分组发送，序号按 0、1、0、1……交替。
    - 每发一个分组，最多等 TIMEOUT 秒，等携带同一序号的 ACK（sock.settimeout、time.monotonic）。其间收到的其他分组一律跳过：损坏的分组（parse_packet() 返回 None），以及上一个分组迟到或重复的确认。超时没等到 ACK，就重传同一个分组，再接着等。
    - 然后用下一个序号发送 FIN，方法相同，直到它被确认；但试过 FIN_TRIES 次之后就直接返回：receive() 返回以后，再也没有人确认它了。
    """
    # TODO：替换下一行。
    raise NotImplementedError("send() 由你来写")


def receive(sock):
    """接收 send() 发到已绑定的 UDP 套接字 ``sock`` 的数据，FIN 到达时按顺序返回全部字节。

    - 跳过损坏的分组（parse_packet() 返回 None）：发送方会重传它。
    - 每个完好的分组都要确认：回一个携带其序号的 ACK，发回它来的地址（sock.recvfrom 会给出这个地址）。重复的分组也要确认，因为发送方重传它，正是因为没收到第一次的确认。
    - 只保留序号等于期望序号的分组的载荷（先期望 0，然后 1、0……）；序号不对的分组是已经收到的分组的重复。
    - 收到期望序号的 FIN：先确认它，再返回全部字节。
    """
    # TODO：替换下一行。
    raise NotImplementedError("receive() 由你来写")
