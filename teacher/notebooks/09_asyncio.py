# Notebook 9: notebook 2's request with retries, for asyncio.
import asyncio

import udplab.aio

MAX_DATAGRAM = 65535  # the largest datagram, so no answer is ever cut short


async def ask_async(addr, data, tries=3, timeout=0.2):
    async with udplab.aio.bind(("127.0.0.1", 0)) as sock:
        for _ in range(tries):
            await sock.sendto(data, addr)
            try:
                return await asyncio.wait_for(sock.recv(MAX_DATAGRAM), timeout)
            except asyncio.TimeoutError:  # the builtin TimeoutError from Python 3.11 on
                continue  # nothing came back in time: try again
    raise TimeoutError(f"no answer from {addr} after {tries} tries")
