# Notebook 1: answer one datagram of any size with its upper-case version.
MAX_DATAGRAM = 65535  # the largest datagram, so no answer is ever cut short


def upper_once(sock):
    data, raddr = sock.recvfrom(MAX_DATAGRAM)  # a buffer the size of the largest datagram
    sock.sendto(data.upper(), raddr)
