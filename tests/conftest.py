"""Shared helpers: loopback only, ports from port 0, bounded waits instead of sleeps."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
import udplab


def python(code: str, *args: str) -> subprocess.Popen[str]:
    """Runs ``code`` in a fresh interpreter with udplab importable, pipes for all three."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def read_line(proc: subprocess.Popen[str]) -> str:
    """The child's next line of standard output; fails the test if the child ended instead."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"child ended early: {proc.communicate(timeout=10)}"
    return line.strip()


#: apt's Chromium and its WebDriver (scripts/check installs both as root), or None.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def headless_chromium(width: int, height: int) -> Any:
    """apt's Chromium, headless, driven through selenium, keeping what its console says and
    every request it makes in its logs ("browser", "performance"). The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                f"--window-size={width},{height}", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-sync"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=options)


def requested_urls(driver: Any) -> set[str]:
    """Every URL the browser asked for since the last call (blocked ones included)."""
    urls = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
    return urls


def wait_until(condition: Callable[[], object], timeout: float = 5.0, step: float = 0.005) -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def process_cpu() -> float:
    """CPU seconds this process has used (user and system, every thread)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def accounted(stats: dict[str, Any]) -> bool:
    """Whether every received datagram is counted exactly once (the server's invariant)."""
    handled = stats["heartbeats"] + stats["quits"] + stats["messages"]
    return bool(stats["received"] == handled + sum(stats["dropped"].values()))


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def no_chat_object_left_running() -> Iterator[None]:
    """A test must stop what it started: a running (non-daemon) object would keep pytest
    serving at exit, as it keeps a script serving."""
    yield
    left = list(udplab._background._running)
    for obj in left:
        obj.stop()
    assert not left, f"the test left these running: {left}"


@pytest.fixture
def server() -> Iterator[udplab.ChatS]:
    """A running chat server on a free loopback port, stopped afterwards."""
    s = udplab.ChatS("127.0.0.1", 0, 5.0)
    s.start()
    try:
        yield s
    finally:
        s.stop()


class Raw:
    """A chat client made of a plain stdlib socket, to send exactly the bytes under test."""

    def __init__(self, server: udplab.ChatS, family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((server.addr[0], 0))
        self.sock.settimeout(5)
        self.server_addr = server.addr
        self.addr = self.sock.getsockname()

    def say(self, data: bytes) -> None:
        self.sock.sendto(data, self.server_addr)

    def hear(self) -> bytes:
        return self.sock.recv(65536)

    def hears_nothing(self, within: float = 0.15) -> bool:
        self.sock.settimeout(within)
        try:
            self.sock.recv(65536)
            return False
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(5)

    def close(self) -> None:
        self.sock.close()
