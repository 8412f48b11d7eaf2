# 第 6 个笔记本：在会丢包、重复和乱序的链路上实现停止等待协议。
import time

MAX_DATAGRAM = 65535  # 最大的数据报，答案因此绝不会截断数据


def send_reliably(sock, addr, messages, timeout=0.05):
    resent = 0
    for seq, message in enumerate(messages):
        packet = b"%d:" % seq + message
        sock.sendto(packet, addr)
        while not acknowledged(sock, b"ACK%d" % seq, timeout):
            sock.sendto(packet, addr)  # 没有按时收到确认：再发一次
            resent += 1
    return resent


def acknowledged(sock, ack, timeout):
    """``ack`` 是否在 ``timeout`` 秒内到达。其他数据报（之前消息的确认，重复的或迟到的）读出后跳过。"""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if sock.recv(MAX_DATAGRAM) == ack:
                return True
        except TimeoutError:
            return False
