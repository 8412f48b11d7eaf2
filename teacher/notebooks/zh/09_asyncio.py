# 第 9 个笔记本：第 2 个笔记本中带重试的请求，asyncio 版。
import asyncio

import udplab.aio

MAX_DATAGRAM = 65535  # 最大的数据报，答案因此绝不会截断数据


async def ask_async(addr, data, tries=3, timeout=0.2):
    async with udplab.aio.bind(("127.0.0.1", 0)) as sock:
        for _ in range(tries):
            await sock.sendto(data, addr)
            try:
                return await asyncio.wait_for(sock.recv(MAX_DATAGRAM), timeout)
            except asyncio.TimeoutError:  # 从 Python 3.11 起就是内置的 TimeoutError
                continue  # 没有按时回复：再试一次
    raise TimeoutError(f"试了 {tries} 次，{addr} 都没有回复")
