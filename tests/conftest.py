"""Shared helpers: loopback only, ports from port 0, bounded waits instead of sleeps."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Callable

import pytest
import udplab


def wait_until(condition: Callable[[], object], timeout: float = 5.0, step: float = 0.005) -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def server() -> Iterator[udplab.ChatS]:
    """A running chat server on a free loopback port, stopped afterwards."""
    s = udplab.ChatS("127.0.0.1", 0, 5.0)
    s.start()
    try:
        yield s
    finally:
        s.stop()
