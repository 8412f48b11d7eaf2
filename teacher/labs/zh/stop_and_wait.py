"""实验 2，停止等待（交替位协议）：参考答案（供教师使用，见 teacher/README.zh-CN.md）。

评分：``udplab grade stop-and-wait teacher/labs/zh/stop_and_wait.py``（或 ``--reference``）。
"""

import struct
import time

TIMEOUT = 0.1  # 等确认的秒数，超时就重传
PAYLOAD = 1000  # 每个分组携带的数据字节数
FIN_TRIES = 8  # 结束分组最多发送几次，之后不再等它的确认
MAX_DATAGRAM = 65535

DATA, ACK, FIN = b"D", b"A", b"F"
HEADER = struct.Struct("!cIH")  # 类型、序号、校验和；后面是载荷


def checksum(data):
    """互联网校验和（RFC 1071），UDP 首部里带的就是它：各个 16 位字的反码和，再取反码。任意一位翻转都会改变它。"""
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


def send(sock, peer, data):
    bit = 0
    for start in range(0, len(data), PAYLOAD):
        packet = make_packet(DATA, bit, data[start:start + PAYLOAD])
        while True:
            sock.sendto(packet, peer)
            if acknowledged(sock, bit):
                break
        bit ^= 1
    # 结束：数据全部得到确认，说明接收方已经全部收到。结束分组的确认可能在接收方返回之后丢失，那时再也没有人应答：试几次就放弃。
    fin = make_packet(FIN, bit)
    for _ in range(FIN_TRIES):
        sock.sendto(fin, peer)
        if acknowledged(sock, bit):
            return


def acknowledged(sock, bit):
    """``bit`` 的确认是否在 TIMEOUT 之内到达。其他分组（损坏的分组，上一个分组迟到或重复的确认）都跳过。"""
    deadline = time.monotonic() + TIMEOUT
    while True:
        # 时间到了以后，已经在等着的数据报仍然算数：机器繁忙时，这个线程可能在一个及时到达的确认之后才被唤醒。
        sock.settimeout(max(deadline - time.monotonic(), 0))
        try:
            packet = sock.recv(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return False
        if parse_packet(packet) == (ACK, bit, b""):
            return True


def receive(sock):
    expected = 0
    chunks = []
    while True:
        packet, sender = sock.recvfrom(MAX_DATAGRAM)
        parsed = parse_packet(packet)
        if parsed is None:
            continue  # 已损坏：等同于丢失，发送方会重传
        kind, bit, payload = parsed
        # 重复的分组也要确认：发送方重传它，正是因为我们第一次的确认丢了。
        sock.sendto(make_packet(ACK, bit), sender)
        if bit != expected:
            continue  # 已经收到的分组的重复
        if kind == FIN:
            return b"".join(chunks)
        chunks.append(payload)
        expected ^= 1
