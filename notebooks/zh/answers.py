"""各笔记本练习的参考答案：请先自己做练习，再来看这里的答案。

每个笔记本最后都有一个练习：一个写答案的单元格（在你写好之前会抛出 ``NotImplementedError``），
再加一个检查单元格。为了让笔记本在你作答之前也能从头运行到尾（udplab 的测试也是这样运行的），
检查单元格会用 ``yours_or_sample`` 包装你的函数：只要你的函数还在抛出 ``NotImplementedError``，
检查就改用本文件中同名的参考答案，并且会明确说出来。
"""

import functools
import time

import udplab

MAX_DATAGRAM = 65535  # 最大的数据报，答案因此绝不会截断数据


def yours_or_sample(yours):
    """返回 ``yours``；如果它还没写好，就改用本文件中同名的答案。"""
    sample = globals()[yours.__name__]
    chosen = []

    @functools.wraps(yours)
    def answer(*args, **kwargs):
        if not chosen:
            try:
                result = yours(*args, **kwargs)
            except NotImplementedError:
                print(f"{yours.__name__}() 还没有写（它抛出了 NotImplementedError），"
                      "所以这次检查改用 answers.py 中的参考答案。")
                chosen.append(sample)
            else:
                chosen.append(yours)
                return result
        return chosen[0](*args, **kwargs)

    return answer


# 第 1 个笔记本：把任意大小的一个数据报转成大写后回复。
def upper_once(sock):
    data, raddr = sock.recvfrom(MAX_DATAGRAM)  # 缓冲区和最大的数据报一样大
    sock.sendto(data.upper(), raddr)


# 第 2 个笔记本：带重试的请求。
def ask(addr, data, tries=3, timeout=0.2):
    with udplab.socket(type=udplab.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for _ in range(tries):
            s.sendto(data, addr)
            try:
                return s.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue  # 没有按时回复：再试一次
    raise TimeoutError(f"试了 {tries} 次，{addr} 都没有回复")


# 第 3 个笔记本：一条消息让服务器端给每个在线的客户端各发一个数据报。
def broadcast_cost(clients, messages):
    return clients * messages


# 第 4 个笔记本：根据服务器端的事件日志，算出谁在线。
def online(events):
    alive = set()
    for _time, kind, addr in events:
        if kind == "join":
            alive.add(addr)
        elif kind in ("quit", "expire"):
            alive.discard(addr)
    return alive


# 第 5 个笔记本：一串序号里有哪些丢失、迟到或重复。
def loss_report(received, sent):
    seen, late, duplicates, highest = set(), 0, 0, -1
    for seq in received:
        if seq in seen:
            duplicates += 1
            continue
        seen.add(seq)
        if seq < highest:
            late += 1  # 比它大的序号先到了
        highest = max(highest, seq)
    return {"lost": sent - len(seen), "late": late, "duplicates": duplicates}



# 第 6 个笔记本：在会丢包、重复和乱序的链路上实现停止等待协议。
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
