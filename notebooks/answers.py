"""Sample answers to the notebooks' exercises: try each exercise before you read its answer here.

Each notebook ends with an exercise: a cell for your answer, which raises ``NotImplementedError``
until you write it, and a check cell. So that a notebook also runs from top to bottom before you
have answered (and in udplab's test suite), the check wraps your function with
``yours_or_sample``: while yours raises ``NotImplementedError``, the check runs the sample answer
of the same name from this file instead, and says so.
"""

import functools
import time

import udplab

MAX_DATAGRAM = 65535  # the largest datagram, so no answer is ever cut short


def yours_or_sample(yours):
    """``yours``, or this file's answer of the same name while ``yours`` is not written yet."""
    sample = globals()[yours.__name__]
    chosen = []

    @functools.wraps(yours)
    def answer(*args, **kwargs):
        if not chosen:
            try:
                result = yours(*args, **kwargs)
            except NotImplementedError:
                print(f"{yours.__name__}() is not written yet (it raises NotImplementedError),"
                      " so this check runs the sample answer from answers.py instead.")
                chosen.append(sample)
            else:
                chosen.append(yours)
                return result
        return chosen[0](*args, **kwargs)

    return answer


# Notebook 1: answer one datagram of any size with its upper-case version.
def upper_once(sock):
    data, raddr = sock.recvfrom(MAX_DATAGRAM)  # a buffer the size of the largest datagram
    sock.sendto(data.upper(), raddr)


# Notebook 2: a request with retries.
def ask(addr, data, tries=3, timeout=0.2):
    with udplab.socket(type=udplab.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(data, addr)
            try:
                return s.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue  # nothing came back in time: try again
    raise TimeoutError(f"no answer from {addr} after {tries} tries")


# Notebook 3: one message makes the server send one datagram to each live client.
def broadcast_cost(clients, messages):
    return clients * messages


# Notebook 4: who is online after the server's diary of events.
def online(events):
    alive = set()
    for _time, kind, addr in events:
        if kind == "join":
            alive.add(addr)
        elif kind in ("quit", "expire"):
            alive.discard(addr)
    return alive


# Notebook 5: what was lost, late or duplicated in a list of sequence numbers.
def loss_report(received, sent):
    seen, late, duplicates, highest = set(), 0, 0, -1
    for seq in received:
        if seq in seen:
            duplicates += 1
            continue
        seen.add(seq)
        if seq < highest:
            late += 1  # a higher number arrived before this one
        highest = max(highest, seq)
    return {"lost": sent - len(seen), "late": late, "duplicates": duplicates}



# Notebook 6: stop-and-wait over a link that loses, duplicates and reorders.
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
