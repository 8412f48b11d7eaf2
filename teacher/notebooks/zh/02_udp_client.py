# 第 2 个笔记本：带重试的请求。
import udplab

MAX_DATAGRAM = 65535  # 最大的数据报，答案因此绝不会截断数据


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
