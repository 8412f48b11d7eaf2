# Notebook 2: a request with retries.
import udplab

MAX_DATAGRAM = 65535  # the largest datagram, so no answer is ever cut short


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
