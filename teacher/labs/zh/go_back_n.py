"""实验 3，回退 N 步：参考答案（供教师使用，见 teacher/README.zh-CN.md）。

评分：``udplab grade go-back-n teacher/labs/zh/go_back_n.py``（或 ``--reference``）。
"""

import struct
import time

WINDOW = 8  # 已发送但尚未确认的分组最多几个
TIMEOUT = 0.1  # 超过这么多秒，最早的未确认分组及其后的所有分组都要重传
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
    deadline = None  # 最早的未确认分组何时超时
    while base < len(packets):
        while next_seq < min(base + window, len(packets)):
            sock.sendto(packets[next_seq], peer)
            if next_seq == base:
                deadline = time.monotonic() + TIMEOUT
            next_seq += 1
        acked = wait_for_ack(sock, deadline)
        if acked is None:  # 超时：回退到 base，把它和它后面的分组全部重传
            next_seq = base
        elif acked > base:  # 累积确认：``acked`` 之前的分组都已到达
            base = acked
            deadline = time.monotonic() + TIMEOUT
    fin = make_packet(FIN, len(packets))
    for _ in range(FIN_TRIES):
        sock.sendto(fin, peer)
        if wait_for_ack(sock, time.monotonic() + TIMEOUT, at_least=len(packets) + 1):
            return


def wait_for_ack(sock, deadline, at_least=0):
    """下一个完好的、不小于 ``at_least`` 的确认所携带的序号（接收方期望的下一个分组）；先到 ``deadline`` 则返回 None。"""
    while True:
        # 时间到了以后，已经在等着的数据报仍然算数：机器繁忙时，这个线程可能在一个及时到达的确认之后才被唤醒。
        sock.settimeout(max(deadline - time.monotonic(), 0))
        try:
            packet = sock.recv(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return None
        parsed = parse_packet(packet)
        if parsed is not None and parsed[0] == ACK and parsed[1] >= at_least:
            return parsed[1]


def receive(sock):
    expected = 0
    chunks = []
    while True:
        packet, sender = sock.recvfrom(MAX_DATAGRAM)
        parsed = parse_packet(packet)
        if parsed is None:
            continue  # 已损坏：等同于丢失
        kind, seq, payload = parsed
        if seq == expected:
            if kind == FIN:
                sock.sendto(make_packet(ACK, expected + 1), sender)
                return b"".join(chunks)
            chunks.append(payload)
            expected += 1
        # 不管是否按序，都告诉对方我们期望的下一个分组：对于乱序的分组、重复的分组或缺口之后的分组，这就是重复上一次的确认（回退 N 步什么也不缓存）。
        sock.sendto(make_packet(ACK, expected), sender)
