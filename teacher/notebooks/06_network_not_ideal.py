# Notebook 6: stop-and-wait over a link that loses, duplicates and reorders.
import time

MAX_DATAGRAM = 65535  # the largest datagram, so no answer is ever cut short


def send_reliably(sock, addr, messages, timeout=0.05):
    resent = 0
    for seq, message in enumerate(messages):
        packet = b"%d:" % seq + message
        sock.sendto(packet, addr)
        while not acknowledged(sock, b"ACK%d" % seq, timeout):
            sock.sendto(packet, addr)  # no acknowledgement in time: send it again
            resent += 1
    return resent


def acknowledged(sock, ack, timeout):
    """Whether ``ack`` arrives within ``timeout`` seconds. Other datagrams (acknowledgements of
    earlier messages, duplicated or late) are read and skipped."""
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
