# 第 1 个笔记本：把任意大小的一个数据报转成大写后回复。
MAX_DATAGRAM = 65535  # 最大的数据报，答案因此绝不会截断数据


def upper_once(sock):
    data, raddr = sock.recvfrom(MAX_DATAGRAM)  # 缓冲区和最大的数据报一样大
    sock.sendto(data.upper(), raddr)
