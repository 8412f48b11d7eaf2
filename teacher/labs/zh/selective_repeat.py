"""实验 4，选择重传：参考答案（供教师使用，见 teacher/README.zh-CN.md）。

评分：``udplab grade selective-repeat teacher/labs/zh/selective_repeat.py``（或 ``--reference``）。
"""

import struct
import time

WINDOW = 8  # 已发送但尚未确认的分组最多几个（接收方也最多缓存这么多）
TIMEOUT = 0.1  # 超过这么多秒，未确认的分组就要重传（每个分组有自己的定时器）
PAYLOAD = 1000  # 每个分组携带的数据字节数
FIN_TRIES = 8  # 结束分组最多发送几次，之后不再等它的确认
MAX_DATAGRAM = 65535

DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")  # 类型、序号、校验和；后面是载荷


def checksum(data):
    """互联网校验和（RFC 1071）。"""
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
    packets = [make_packet(DATA, seq, data[start:start + PAYLOAD])
               for seq, start in enumerate(range(0, len(data), PAYLOAD))]
    base = 0  # 最早的未确认分组
    next_seq = 0  # 下一个从未发过的分组
    deadlines = {}  # 分组 -> 它何时超时，每个已发送而未确认的分组各有一项
    while base < len(packets):
        while next_seq < min(base + window, len(packets)):
            sock.sendto(packets[next_seq], peer)
            deadlines[next_seq] = time.monotonic() + TIMEOUT
            next_seq += 1
        seq = min(deadlines, key=deadlines.get)  # 最先到期的定时器
        acked = wait_for_ack(sock, deadlines[seq])
        if acked is None:  # 只重传这一个
            sock.sendto(packets[seq], peer)
            deadlines[seq] = time.monotonic() + TIMEOUT
        elif acked in deadlines:
            del deadlines[acked]
            while base < next_seq and base not in deadlines:
                base += 1
    fin = make_packet(FIN, len(packets))
    for _ in range(FIN_TRIES):
        sock.sendto(fin, peer)
        if wait_for_ack(sock, time.monotonic() + TIMEOUT) == len(packets):
            return


def wait_for_ack(sock, deadline):
    """下一个完好的确认所携带的序号；先到 ``deadline`` 则返回 None。"""
    while True:
        # 时间到了以后，已经在等着的数据报仍然算数：机器繁忙时，这个线程可能在一个及时到达的确认之后才被唤醒。
        sock.settimeout(max(deadline - time.monotonic(), 0))
        try:
            packet = sock.recv(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return None
        parsed = parse_packet(packet)
        if parsed is not None and parsed[0] == ACK:
            return parsed[1]


def receive(sock, window=WINDOW):
    expected = 0  # 下一个要交付的分组
    kept = {}  # 比 ``expected`` 先到的分组，按序号存放
    chunks = []
    while True:
        packet, sender = sock.recvfrom(MAX_DATAGRAM)
        parsed = parse_packet(packet)
        if parsed is None:
            continue  # 已损坏：等同于丢失
        kind, seq, payload = parsed
        if seq >= expected + window:
            continue  # 超出窗口：发送方还不可能发出它
        # 窗口内以及窗口之前的分组都要确认：窗口之前的分组是重复的，它第一次的确认丢了，不再确认一次，发送方就会没完没了地重传。
        sock.sendto(make_packet(ACK, seq), sender)
        if kind == FIN and seq == expected:
            return b"".join(chunks)
        if seq >= expected and kind == DATA:
            kept[seq] = payload
            while expected in kept:
                chunks.append(kept.pop(expected))
                expected += 1
