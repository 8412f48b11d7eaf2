"""The ``udplab`` command (also ``python -m udplab``): chat across terminals.

    udplab server [--port 10007]             # terminal 1: a ChatS, logging what happens
    udplab client 127.0.0.1 10007 --name ann  # terminals 2, 3...: type to chat
    udplab link 127.0.0.1 10007 --loss 0.2    # a bad network in between (clients use its port)
    udplab demo                               # a whole scripted chat on loopback
    udplab grade go-back-n go_back_n.py       # grade a lab (see udplab.labs)

Each subcommand is one ``add_<name>(sub)`` function below that adds its parser and sets
``run`` (a function of the parsed arguments returning the exit status); ``SUBCOMMANDS`` lists
them, in the order ``--help`` shows them. Every text a learner reads goes through ``_()``, so
that it is Chinese under a Chinese locale or ``UDPLAB_LANG=zh``: see :mod:`udplab._i18n` for how
to add one.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable, NoReturn, TextIO

from . import demo
from ._i18n import N_, _, argparse_translated, columns, ngettext, wrap
from .chat import ChatC, ChatS
from .labs.command import add_grade
from .link import Link
from .web import View
from .wireshark import add_wireshark

FORMAT = "%(asctime)s %(message)s"
"""The notes' log format without the thread's name: the core's messages begin with what speaks
(``chat 127.0.0.1:5000 joined``, ``link ... mapped``), which the thread's name repeated
(``servicer chat``, ``link link``)."""

class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, _("{prog}: error: {message} (see: {prog} --help)").format(
            prog=self.prog, message=message) + "\n")


def _fail(prog: str, message: str) -> int:
    print(_("{prog}: error: {message}").format(prog=prog, message=message), file=sys.stderr)
    return 2


def _example(*lines: str) -> str:
    return _("example:") + "\n" + "\n".join(f"  {line}" for line in lines)


class _Help(argparse.RawDescriptionHelpFormatter):
    """Option help wrapped by terminal columns (a Chinese character takes two); the
    description, wrapped by ``wrap`` beforehand, and the examples kept as written."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap(text, width)

    def _format_usage(self, usage: Any, actions: Any, groups: Any, prefix: Any) -> str:
        # argparse indents the usage's later lines by the length of "usage: PROG", in
        # characters: a Chinese prefix is wider on the screen than it is long.
        if prefix is None:
            prefix = argparse._("usage: ")  # type: ignore[attr-defined]
        text: str = super()._format_usage(usage, actions, groups, prefix)
        extra = " " * (columns(prefix) - len(prefix))
        return text.replace("\n ", "\n " + extra) if extra else text


def _subcommand(sub: Any, name: str, summary: str, description: str,
                *examples: str) -> argparse.ArgumentParser:
    """Add the subcommand ``name``: ``summary`` in ``udplab --help``, ``description`` (wrapped)
    and ``examples`` (kept as written) in its own ``--help``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description="\n".join(wrap(description, 79)),
        epilog=_example(*examples), formatter_class=_Help)
    return parser


# -- argument types: each raises ArgumentTypeError with what was wrong ---------------------------

def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a port number: {text!r}").format(text=text)
                                          ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(_("a port is 0-65535, got {value}").format(value=value))
    return value


def _target_port(text: str) -> int:
    value = _port(text)
    if value == 0:
        raise argparse.ArgumentTypeError(_("the server's port, not 0"))
    return value


def _number(text: str, strict: bool, not_a: str, out_of_range: str) -> float:
    """A finite number at least 0 (more than 0 if ``strict``); the messages take ``{text}``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(not_a.format(text=text)) from None
    if not math.isfinite(value) or value < 0 or (strict and value == 0):
        raise argparse.ArgumentTypeError(out_of_range.format(text=text))
    return value


def _positive_seconds(text: str) -> float:
    return _number(text, True, _("not a number of seconds: {text!r}"),
                   _("must be a number of seconds more than 0, got {text}"))


def _real(text: str) -> float:
    """A link option's number; whether it is allowed is for ``Link`` (its core) to say."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a number: {text!r}").format(text=text)
                                          ) from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a whole number: {text!r}").format(text=text)
                                          ) from None


def _whole(text: str, least: int, most: int | None = None) -> int:
    value = _integer(text)
    if most is None and value < least:
        raise argparse.ArgumentTypeError(
            _("must be at least {least}, got {value}").format(least=least, value=value))
    if most is not None and not least <= value <= most:
        raise argparse.ArgumentTypeError(_("must be from {least} to {most}, got {value}").format(
            least=least, most=most, value=value))
    return value


def _count(text: str) -> int:
    return _whole(text, 1)


def _word(text: str) -> bytes:
    if not text:
        raise argparse.ArgumentTypeError(_("must not be empty"))
    return text.encode("utf-8")


def _name(text: str) -> str:
    if not text or not text.isprintable() or text.strip() != text:
        raise argparse.ArgumentTypeError(_("a name is printable text without surrounding "
                                           "spaces, such as alice, got {text!r}").format(
                                               text=text))
    return text


def _either(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """One value for both directions, or ``UP,DOWN``."""

    def parse(text: str) -> Any:
        parts = text.split(",")
        if len(parts) == 1:
            return check(parts[0])
        if len(parts) == 2:
            return check(parts[0]), check(parts[1])
        raise argparse.ArgumentTypeError(_("one value, or UP,DOWN: got {text!r}").format(
            text=text))

    parse.__name__ = check.__name__.lstrip("_").replace("_", " ")
    return parse


# -- shared pieces ------------------------------------------------------------------------------

def _hostport(addr: tuple[Any, ...]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def show(data: bytes) -> str:
    """A received datagram as one line of text: UTF-8 decoded, one trailing newline dropped
    (netcat sends one), bytes that are not UTF-8 and control characters shown escaped (so a
    datagram can never move the cursor or clear the screen)."""
    if data.endswith(b"\n"):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    text = data.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _serve_until_ctrl_c(start: Callable[[], None], announce: Callable[[], str],
                        still_running: Callable[[], bool], every: float = 0.25,
                        tick: Callable[[], None] | None = None,
                        say: Callable[[str], None] = print) -> None:
    """``start()``, ``say(announce())``, then block the main thread until Ctrl-C (or SIGTERM,
    see ``main``) or until ``still_running()`` turns false; ``tick()`` is called every
    ``every`` seconds. Errors of ``start()`` propagate."""
    try:
        _held(start)
        say(announce())
        while still_running():
            time.sleep(every)
            if tick is not None:
                tick()
    except KeyboardInterrupt:
        pass
    _ignore_interrupts()


def _held(start: Callable[[], None]) -> None:
    """``start()`` with Ctrl-C and SIGTERM held back: one arriving while a socket is bound and
    threads start would end in a traceback. It is raised right after, as KeyboardInterrupt,
    where the caller catches it."""
    if not hasattr(signal, "pthread_sigmask") or (
            threading.current_thread() is not threading.main_thread()):
        start()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _ignore_interrupts() -> None:
    """While stopping: a second Ctrl-C would only interrupt it with a traceback."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _add_capture(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--capture", metavar="FILE", help=help)


def _add_view(p: argparse.ArgumentParser) -> None:
    p.add_argument("--view", action="store_true",
                   help=_("also show every datagram live in the browser, as a ladder diagram "
                          "(udplab.view); prints the page's address (on 127.0.0.1)"))
    p.add_argument("--view-port", type=_port, default=0, metavar="PORT",
                   help=_("port of the --view page (default 0: any free)"))


def _view(args: argparse.Namespace, obj: ChatS | Link) -> View | None:
    return View(obj, port=args.view_port, daemon=True) if args.view else None


def _starting(obj: ChatS | Link, view: View | None) -> Callable[[], None]:
    def start() -> None:
        obj.start()
        if view is not None:
            view.start()
    return start


def _view_note(view: View | None) -> str:
    return "" if view is None else "\n" + _("live view: {url} (open it in a browser)").format(
        url=view.url)


def _capture_failed(args: argparse.Namespace, e: BaseException) -> int | None:
    """Exit status 2 with one line if opening the ``--capture`` file is what failed (its
    error names it). The file is opened before the port is bound, but rewritten only once the
    object runs: a start that fails leaves an earlier capture as it was."""
    if not (isinstance(e, OSError) and args.capture is not None and e.filename == args.capture):
        return None
    return _fail(args.prog, _("cannot write the capture file {path}: {reason}").format(
        path=args.capture, reason=_reason(e)))


def _capture_note(stats: dict[str, Any], path: str | None) -> str:
    """``; capture: 12 records, 840 bytes in chat.pcap`` (empty without a capture)."""
    capture = stats.get("capture")
    if path is None or capture is None:
        return ""
    extra = _nonzero({k: v for k, v in capture.items() if k not in ("records", "bytes")})
    return (_("; capture: {records} records, {bytes} bytes in {path}").format(
        records=capture["records"], bytes=capture["bytes"], path=path)
        + (f" ({extra})" if extra else ""))


# The counters of ChatS.stats(), Link.stats() and their captures, as the CLI names them.
_COUNTERS = {
    "received": N_("received"), "messages": N_("messages"), "sent": N_("sent"),
    "heartbeats": N_("heartbeats"), "joins": N_("joins"), "quits": N_("quits"),
    "expiries": N_("expiries"), "send_errors": N_("send errors"),
    "recv_errors": N_("receive errors"), "notices_dropped": N_("notices not logged"),
    "clients": N_("clients"), "empty": N_("empty"), "too_long": N_("too long"),
    "oversize": N_("oversize"), "refused": N_("refused"), "unknown_quit": N_("unknown quit"),
    "lost": N_("lost"), "duplicated": N_("duplicated"), "reordered": N_("reordered"),
    "corrupted": N_("corrupted"), "delayed": N_("delayed"),
    "queue_dropped": N_("dropped from a full queue"), "forwarded": N_("forwarded"),
    "flushed": N_("flushed at stop"), "queued": N_("queued"),
    "forwarded_bytes": N_("bytes forwarded"), "mapped": N_("mapped"),
    "forgotten": N_("forgotten"), "skipped": N_("skipped"), "dropped": N_("dropped"),
    "errors": N_("errors"), "records": N_("records"), "bytes": N_("bytes"),
}


def _nonzero(counts: dict[str, Any]) -> str:
    """``received 3, messages 1``: the counters that are not zero, by their names."""
    return _(", ").join(f"{_(_COUNTERS.get(k, k.replace('_', ' ')))} {v}"
                        for k, v in counts.items() if v and not isinstance(v, dict))


# -- udplab server ------------------------------------------------------------------------------

def add_server(sub: Any) -> None:
    p = _subcommand(
        sub, "server", _("run a chat server (ChatS) and log what happens"),
        _("Run the notes' group chat server (ChatS): every message a client sends goes to every "
          "live client; a client silent for INVAL seconds is dropped. It logs joins, messages, "
          "quits and expiries as they happen; Ctrl-C stops it and prints its totals."),
        "udplab server --port 10007 --inval 10",
        "udplab server --port 0    # " + _("any free port; it prints which"))
    p.add_argument("--host", default="127.0.0.1",
                   help=_("address to listen on (default 127.0.0.1; '' or 0.0.0.0 listens on "
                          "every interface, reachable by other machines)"))
    p.add_argument("--port", type=_port, default=10007,
                   help=_("port (default 10007; 0: any free)"))
    p.add_argument("--inval", type=_positive_seconds, default=10.0,
                   help=_("seconds of silence before a client is dropped (default 10)"))
    p.add_argument("--no-echo", dest="echo", action="store_false",
                   help=_("do not send a message back to its sender"))
    p.add_argument("--max-clients", type=_count, default=10_000,
                   help=_("clients at once; new ones past it are refused (default 10000)"))
    p.add_argument("--max-payload", type=_count, default=65_507,
                   help=_("longest message in bytes; longer ones are dropped (default 65507)"))
    p.add_argument("--heartbeat", type=_word, default=b"HB",
                   help=_("heartbeat word (default HB)"))
    p.add_argument("--quit", type=_word, default=b"quit", help=_("quit word (default quit)"))
    p.add_argument("--prefix", type=_word, default=b"ACK",
                   help=_("what the server puts before every broadcast (default ACK)"))
    _add_capture(p, _("write every datagram the server sends and receives to FILE, a pcap file "
                      "for Wireshark or tcpdump -r (created or overwritten; at most 100 MiB)"))
    _add_view(p)
    p.set_defaults(run=run_server)


def run_server(args: argparse.Namespace) -> int:
    logging.basicConfig(format=FORMAT, level=logging.INFO)

    def announce() -> str:
        host, port = server.addr[0], server.addr[1]
        return _("udplab server listening on {addr}; chat with: udplab client {host} {port}  "
                 "(or: nc -u {host} {port}); Ctrl-C stops").format(
                     addr=_hostport(server.addr), host=host, port=port) + _view_note(view)

    try:
        server = ChatS(args.host, args.port, args.inval, echo=args.echo,
                       max_clients=args.max_clients, max_payload=args.max_payload,
                       heartbeat=args.heartbeat, quit=args.quit, prefix=args.prefix,
                       capture=args.capture)
        view = _view(args, server)
        _serve_until_ctrl_c(_starting(server, view), announce, lambda: server.running)
    except (OSError, ValueError, TypeError, OverflowError) as e:
        return _capture_failed(args, e) or _fail(
            args.prog, _("cannot listen on {host}:{port}: {reason}").format(
                host=args.host, port=args.port, reason=_reason(e)))
    if view is not None:
        view.stop()
    # The core would log its totals as it stops (English, without the capture): printed below.
    logging.getLogger("udplab.server").setLevel(logging.WARNING)
    server.stop()
    stats = server.stats()
    dropped = {k: v for k, v in stats["dropped"].items() if v}
    print(_("udplab server stopped; stats: {stats}").format(
              stats=_nonzero(stats) or _("nothing received"))
          + (_("; dropped: {dropped}").format(dropped=_nonzero(dropped)) if dropped else "")
          + _capture_note(stats, args.capture), flush=True)
    return 0


def _reason(e: BaseException) -> str:
    """An exception as a short reason: ``[Errno 98] Address in use`` becomes
    ``address in use (errno 98)``."""
    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror[0].lower() + e.strerror[1:]
        return f"{reason} (errno {e.errno})" if e.errno else reason
    return str(e) or type(e).__name__


# -- udplab client ------------------------------------------------------------------------------

def add_client(sub: Any) -> None:
    p = _subcommand(
        sub, "client", _("join a chat server: type to send, see what everyone says"),
        _("Join the chat server at HOST PORT (a ChatC): each line you type is sent (UTF-8), "
          "each broadcast is printed as it arrives, above the line you are typing. /quit, "
          "Ctrl-D (which sends a half-typed line first) or Ctrl-C says quit to the server and "
          "exits. With stdin not a terminal (a pipe, a file) it sends each line, prints the "
          "answers until none came for WAIT seconds, and exits; with status 1 if a line could "
          "not be sent."),
        "udplab client 127.0.0.1 10007 --name alice",
        "echo hello | udplab client 127.0.0.1 10007")
    p.add_argument("host", metavar="HOST", help=_("the server's address, such as 127.0.0.1"))
    p.add_argument("port", metavar="PORT", type=_target_port, help=_("the server's port"))
    p.add_argument("--interval", type=_positive_seconds, default=1.0,
                   help=_("seconds between heartbeats (default 1; keep it well under the "
                          "server's --inval)"))
    p.add_argument("--name", type=_name,
                   help=_("your name: sent before each of your lines ('alice: hi') and shown "
                          "in the prompt"))
    p.add_argument("--wait", type=_positive_seconds, default=1.0,
                   help=_("stdin not a terminal: exit once nothing arrived for this many "
                          "seconds after the last line (default 1; at most 10 times that in "
                          "all)"))
    _add_capture(p, _("write every datagram the client sends and receives to FILE, a pcap file "
                      "for Wireshark or tcpdump -r (created or overwritten; at most 100 MiB)"))
    p.set_defaults(run=run_client)


class _Receiver:
    """Prints what the client receives, on a thread of its own, until stopped."""

    def __init__(self, client: ChatC, out: Callable[[str], None]) -> None:
        self.client = client
        self.out = out
        self.last = time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="printer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                data = self.client.recv(timeout=0.1)
            except TimeoutError:
                continue
            except (OSError, RuntimeError):
                return
            self.last = time.monotonic()
            self.out(show(data))

    def quiet_for(self, seconds: float, most: float) -> None:
        """Return once nothing arrived for ``seconds``, or after ``most`` seconds."""
        deadline = time.monotonic() + most
        self.last = max(self.last, time.monotonic())
        while time.monotonic() < min(self.last + seconds, deadline):
            time.sleep(0.02)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def run_client(args: argparse.Namespace) -> int:
    # Received datagrams are printed, not logged; warnings (a server not answering) still show.
    logging.basicConfig(format=FORMAT, level=logging.WARNING)
    prefix = b"" if args.name is None else args.name.encode("utf-8") + b": "
    try:
        client = ChatC(args.host, args.port, interval=args.interval, name=args.name,
                       capture=args.capture)
        _held(client.start)
    except (OSError, ValueError, TypeError, OverflowError) as e:
        return _capture_failed(args, e) or _fail(
            args.prog, _("cannot talk to {host}:{port}: {reason}").format(
                host=args.host, port=args.port, reason=_reason(e)))
    except KeyboardInterrupt:  # while starting
        pass
    status = 0
    try:
        if client.running and sys.stdin.isatty() and sys.stdout.isatty():
            _interactive(client, prefix, args.name)
        elif client.running:
            status = _plain(client, prefix, args.wait, args.prog)
    except KeyboardInterrupt:  # before the prompt or the reading began
        pass
    finally:  # whatever happened: the client's threads would keep the process alive
        _ignore_interrupts()
        client.stop()  # says quit
    note = _capture_note(client.stats(), args.capture)
    if note:
        print(_("udplab client stopped") + note, file=sys.stderr, flush=True)
    return status


def _send(client: ChatC, data: bytes) -> str | None:
    """Send ``data``: None, or why it could not be sent, as one line."""
    try:
        client.send(data)
    except OSError as e:
        if e.errno == errno.EMSGSIZE or getattr(e, "winerror", None) == 10040:  # WSAEMSGSIZE
            ipv6 = client.addr is not None and len(client.addr) == 4
            return _("not sent: {size} bytes are more than one UDP datagram carries ({most} "
                     "bytes over {ip})").format(size=len(data), most=65527 if ipv6 else 65507,
                                                ip="IPv6" if ipv6 else "IPv4")
        return _("not sent: {reason}").format(reason=_reason(e))
    return None


def _plain(client: ChatC, prefix: bytes, wait: float, prog: str) -> int:
    """Lines from stdin, answers as plain lines on stdout; 1 if a line could not be sent (said
    on stderr, and the next lines are sent all the same), else 0."""

    def out(text: str) -> None:
        print(text, flush=True)

    receiver = _Receiver(client, out)
    status = 0
    try:
        for number, raw in enumerate(sys.stdin.buffer, 1):
            line = raw.rstrip(b"\r\n")
            if line.strip() == b"/quit":
                break
            if line:
                failed = _send(client, prefix + line)
                if failed is not None:
                    status = 1
                    print(_("{prog}: error: line {number} {failed}").format(
                        prog=prog, number=number, failed=failed), file=sys.stderr, flush=True)
                receiver.last = time.monotonic()
        receiver.quiet_for(wait, 10 * wait)
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_interrupts()
        receiver.stop()
    return status


def _interactive(client: ChatC, prefix: bytes, name: str | None) -> None:
    """A prompt that stays at the bottom: what arrives is printed above it (prompt_toolkit's
    patch_stdout), and the line being typed is redrawn below."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.patch_stdout import patch_stdout

    keys = KeyBindings()

    @keys.add("c-d")
    def _end_of_input(event: KeyPressEvent) -> None:
        # As at the end of a pipe: a half-typed line is sent, then the client leaves.
        event.app.exit(exception=EOFError(event.current_buffer.text))

    session: PromptSession[str] = PromptSession(key_bindings=keys)
    prompt = f"{name}> " if name else "> "
    with patch_stdout(raw=True):
        # Log records (a server not answering) go above the prompt as well.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [handler]
        receiver = _Receiver(client, print)
        assert client.addr is not None  # started
        me, server = _hostport(client.addr), _hostport(client.raddr)
        print(_("you are {name} ({addr}), in the chat of the server at {server}: type a line "
                "and press Enter to send it, /quit to leave").format(
                    name=name, addr=me, server=server) if name else
              _("you are {addr}, in the chat of the server at {server}: type a line and press "
                "Enter to send it, /quit to leave").format(addr=me, server=server))
        try:
            while True:
                try:
                    line = session.prompt(prompt)
                except EOFError as end:
                    line = str(end.args[0]) if end.args else ""
                    if line:
                        _say_if_failed(_send(client, prefix + _encoded(line)))
                    break
                if line.strip() == "/quit":
                    break
                if line:
                    _say_if_failed(_send(client, prefix + _encoded(line)))
        except KeyboardInterrupt:
            pass
        finally:
            _ignore_interrupts()
            receiver.stop()
            root.handlers = saved


def _encoded(line: str) -> bytes:
    return line.encode("utf-8", "surrogateescape")


def _say_if_failed(failed: str | None) -> None:
    if failed is not None:
        print(failed, flush=True)


# -- udplab link --------------------------------------------------------------------------------

def add_link(sub: Any) -> None:
    p = _subcommand(
        sub, "link", _("relay to a server through a bad network (loss, delay, ...)"),
        _("Run a udplab.Link: a relay to the UDP server at TARGET_HOST TARGET_PORT that loses, "
          "duplicates, reorders, corrupts, delays and rate-limits datagrams, the same way for "
          "the same --seed. Point clients at the address it prints instead of the server's. "
          "Each impairment takes one value for both directions or UP,DOWN (up: client to "
          "server). On a terminal one status line shows the counts per direction, updated "
          "as they change; Ctrl-C stops it and prints the totals."),
        "udplab link 127.0.0.1 10007 --loss 0.2 --delay 0.1 --jitter 0.05",
        "udplab link 127.0.0.1 10007 --port 10008 --loss 0,0.5 --seed 1")
    p.add_argument("target_host", metavar="TARGET_HOST", help=_("the server's address"))
    p.add_argument("target_port", metavar="TARGET_PORT", type=_target_port,
                   help=_("the server's port"))
    p.add_argument("--host", default="127.0.0.1",
                   help=_("address to listen on (default 127.0.0.1)"))
    p.add_argument("--port", type=_port, default=0,
                   help=_("port to listen on (default 0: any free)"))
    # Only turned into numbers here: Link checks them (its core: the one place for the link's
    # options), and _refusal words what it says.
    number = _either(_real)
    p.add_argument("--loss", metavar="P[,P]", type=number, default=0.0,
                   help=_("probability a datagram is lost"))
    p.add_argument("--duplicate", metavar="P[,P]", type=number, default=0.0,
                   help=_("probability a datagram is sent twice"))
    p.add_argument("--reorder", metavar="P[,P]", type=number, default=0.0,
                   help=_("probability a datagram overtakes the delayed ones (needs --delay)"))
    p.add_argument("--corrupt", metavar="P[,P]", type=number, default=0.0,
                   help=_("probability a datagram gets one bit flipped"))
    p.add_argument("--delay", metavar="S[,S]", type=number, default=0.0,
                   help=_("seconds each datagram waits"))
    p.add_argument("--jitter", metavar="S[,S]", type=number, default=0.0,
                   help=_("seconds the delay varies by, either way"))
    p.add_argument("--rate", metavar="BPS[,BPS]", type=number, default=None,
                   help=_("bytes of payload per second (default: no limit)"))
    p.add_argument("--limit", metavar="N[,N]", type=_either(_integer), default=1000,
                   help=_("datagrams waiting per direction; more are dropped (default 1000)"))
    p.add_argument("--seed", type=_integer,
                   help=_("same seed, same fate for each datagram (default: a random one, "
                          "printed)"))
    _add_capture(p, _("write every datagram the link sends and receives to FILE, a pcap file "
                      "for Wireshark or tcpdump -r (created or overwritten; at most 100 MiB)"))
    _add_view(p)
    p.set_defaults(run=run_link)


_DIRECTIONS = {"up": N_("up: {counts}"), "down": N_("down: {counts}")}


_IMPAIRMENTS = (("lost", N_("lost {lost}")), ("duplicated", N_("dup {duplicated}")),
                ("reordered", N_("reord {reordered}")))


def status_line(stats: dict[str, Any], width: int | None = None) -> str:
    """``up: in 3 out 2 lost 1 dup 0 reord 0 | down: ...``; if that is wider than ``width``
    terminal columns, the counts that are 0 left out (``up: in 3 out 2 lost 1 | down: ...``);
    cut (``…``) only if even that does not fit."""
    text = ""
    for every in (True, False):
        text = " | ".join(_(_DIRECTIONS[d]).format(counts=" ".join(
            [_("in {received} out {forwarded}").format(**stats[d])]
            + [_(form).format(**stats[d]) for key, form in _IMPAIRMENTS
               if every or stats[d][key]])) for d in ("up", "down"))
        if width is None or columns(text) <= width:
            return text
    assert width is not None
    while text and columns(text) > width - 1:
        text = text[:-1]
    return text + "…"


def _terminal_width(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError):
        return shutil.get_terminal_size().columns


class _StatusLine:
    """One line at the bottom of a terminal, rewritten in place, with the log records printed
    above it. Not a terminal: a plain line whenever the counts changed.

    The cursor waits at the start of the line, not at its end: a terminal that rewraps its lines
    when it gets narrower (most do) moves the cursor with the text, so clearing from there to
    the end of the screen removes every row the old line now takes. With the cursor at its end,
    the rewrapped line's first row stayed on the screen as a stale copy."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.text = ""
        self.lock = threading.Lock()

    def width(self) -> int | None:
        """The columns the line may take (one less than the terminal's: a line that fills the
        last column leaves the cursor waiting to wrap), None if not a terminal."""
        return _terminal_width(self.out) - 1 if self.tty else None

    def update(self, text: str) -> None:
        with self.lock:
            if text == self.text:
                return
            self.text = text
            self.out.write(f"\r\x1b[J{text}\r" if self.tty else f"{text}\n")
            self.out.flush()

    def above(self, line: str) -> None:
        with self.lock:
            if self.tty:
                self.out.write(f"\r\x1b[J{line}\n{self.text}\r")
            else:
                self.out.write(f"{line}\n")
            self.out.flush()

    def end(self) -> None:
        with self.lock:
            if self.tty and self.text:
                self.out.write(f"\r\x1b[J{self.text}\n")
                self.out.flush()
            self.text = ""


class _AboveStatus(logging.Handler):
    def __init__(self, status: _StatusLine) -> None:
        super().__init__()
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.status.above(self.format(record))
        except Exception:
            self.handleError(record)


def _refusal(e: ValueError) -> str:
    """The core's refusal of a link option in the learner's language, from its ``details``
    (in English it reads as the core's own message: tests/test_i18n.py holds them together)."""
    d: dict[str, Any] = getattr(e, "details", None) or {}
    texts = {
        "out_of_range": _("{option} must be {allowed}, got {got}"),
        "reorder_needs_delay": _(
            "{option} needs a delay: a reordered datagram is sent at once, ahead of the ones "
            "waiting out the delay; with delay 0 nothing waits, so nothing can be overtaken "
            "(netem refuses it too)"),
        "target_port_zero": _("{option} {target} has port 0: give the port the server listens "
                              "on"),
        "target_is_the_link": _(
            "{option} {target} is the link's own address (it listens on {listen}): it would "
            "relay every datagram to itself, round and round for ever; give the address of the "
            "server the clients should reach"),
    }
    if d.get("problem") not in texts:
        return str(e)
    option = d["option"]
    if d["direction"] is not None:
        option = _("{option} ({direction})").format(
            option=option, direction=_(_WAYS[d["direction"]]))
    fields = dict(d, option=option)
    if "allowed" in d:
        fields["allowed"] = _allowed(d["allowed"], d["least"], d["most"])
    return texts[d["problem"]].format(**fields)


_WAYS = {"up": N_("up"), "down": N_("down")}


def _allowed(kind: str, least: int | None, most: int | None) -> str:
    """What a link option allows, as the core's ``Allowed`` says it."""
    seconds = {1: _("1 second"), 86_400: _("86400 seconds (a day)")}.get(
        most or 0, ngettext("{most} second", "{most} seconds", most or 0).format(most=most))
    return {
        "probability": _("a probability from 0 to 1"),
        "seconds": _("from 0 to {seconds}"),
        "positive_seconds": _("more than 0 and at most {seconds}"),
        "rate": ngettext("at least {least} byte per second (no rate: no limit)",
                         "at least {least} bytes per second (no rate: no limit)", least or 0),
        "at_least": _("a whole number, at least {least}"),
        "between": _("a whole number from {least} to {most}"),
    }[kind].format(seconds=seconds, least=least, most=most)


def run_link(args: argparse.Namespace) -> int:
    status = _StatusLine(sys.stdout)
    handler = _AboveStatus(status)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    target = (args.target_host, args.target_port)

    def announce() -> str:
        host, port = link.addr[0], link.addr[1]
        return _("udplab link on {addr} relays to {target} (seed {seed}); point clients at "
                 "it: udplab client {host} {port}; Ctrl-C stops").format(
                     addr=_hostport(link.addr), target=_hostport(target), seed=link.seed,
                     host=host, port=port) + _view_note(view)

    try:
        link = Link(target, loss=args.loss, duplicate=args.duplicate, reorder=args.reorder,
                    corrupt=args.corrupt, delay=args.delay, jitter=args.jitter, rate=args.rate,
                    limit=args.limit, seed=args.seed, listen=(args.host, args.port),
                    capture=args.capture)
    except ValueError as e:  # an option out of range, or a target that is the link itself
        return _fail(args.prog, _refusal(e))
    try:
        view = _view(args, link)
        # On a terminal, four times a second: a resized terminal gets a line that fits at once.
        _serve_until_ctrl_c(_starting(link, view), announce, lambda: link.running,
                            every=0.25 if status.tty else 1.0,
                            tick=lambda: status.update(status_line(link.stats(), status.width())),
                            say=status.above)
    except (OSError, ValueError, TypeError, OverflowError) as e:
        return _capture_failed(args, e) or _fail(
            args.prog, _("cannot relay {listen} -> {target}: {reason}").format(
                listen=f"{args.host}:{args.port}", target=_hostport(target), reason=_reason(e)))
    if view is not None:
        view.stop()
    link.stop()
    status.end()
    stats = link.stats()
    for d in ("up", "down"):
        print(_("udplab link stopped; {direction}").format(
            direction=_(_DIRECTIONS[d]).format(counts=_nonzero(stats[d]) or _("nothing"))),
            flush=True)
    note = _capture_note(stats, args.capture)
    if note:
        print(_("udplab link stopped") + note, flush=True)
    return 0


# -- udplab view --------------------------------------------------------------------------------

def add_view(sub: Any) -> None:
    p = _subcommand(
        sub, "view", _("replay a capture file in the browser, as a ladder diagram"),
        _("Serve a page that replays the datagrams of FILE (a pcap file, such as one written "
          "with --capture) as a ladder diagram, with their timing as recorded; the page has a "
          "speed control. The page is served on 127.0.0.1 unless --host says otherwise."),
        "udplab server --port 0 --capture chat.pcap",
        "udplab view chat.pcap")
    p.add_argument("file", metavar="FILE", help=_("the capture file to replay"))
    p.add_argument("--host", default="127.0.0.1",
                   help=_("address to serve the page on (default 127.0.0.1)"))
    p.add_argument("--port", type=_port, default=0,
                   help=_("port to serve the page on (default 0: any free)"))
    p.set_defaults(run=run_view)


def run_view(args: argparse.Namespace) -> int:
    logging.basicConfig(format=FORMAT, level=logging.INFO)
    try:
        view = View(args.file, host=args.host, port=args.port)
        _serve_until_ctrl_c(view.start, lambda: _(
            "udplab view replays {path} at {url} (open it in a browser); Ctrl-C stops").format(
                path=args.file, url=view.url), lambda: view.running)
    except (OSError, ValueError) as e:
        return _fail(args.prog, _("cannot replay {path}: {reason}").format(
            path=args.file, reason=_reason(e)))
    view.stop()
    return 0


# -- udplab demo --------------------------------------------------------------------------------

def add_demo(sub: Any) -> None:
    p = _subcommand(
        sub, "demo", _("run the tutorial's server, client and group chat"),
        _("Run the tutorial's UDP server and client, then a group chat of alice, bob and "
          "carol, on loopback."),
        "udplab demo --inval 2")
    p.add_argument("--inval", type=demo.short_inval, default=1.0,
                   help=_("seconds of silence before the server drops a client, at most 5 "
                          "(default 1)"))
    p.set_defaults(run=lambda args: demo.run(args.inval))


SUBCOMMANDS: list[Callable[[Any], None]] = [add_server, add_client, add_link, add_view,
                                             add_demo, add_wireshark, add_grade]
"""Each adds one subcommand; a new one is a function like these, appended here."""


def parser(prog: str = "udplab") -> argparse.ArgumentParser:
    top = _Parser(
        prog=prog,
        description="\n".join(wrap(_(
            "udplab: UDP chat across terminals, as in the notes. Start a server, then clients "
            "in other terminals (HOST PORT as the server prints them)."), 79)),
        epilog=_example("udplab server --port 10007                   # " + _("terminal 1"),
                        "udplab client 127.0.0.1 10007 --name alice   # " + _("terminal 2"),
                        "udplab client 127.0.0.1 10007 --name bob     # " + _("terminal 3"),
                        "nc -u 127.0.0.1 10007                        # "
                        + _("netcat works too"),
                        "udplab server --help                         # " + _("its options")),
        formatter_class=_Help)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return top


def main(argv: list[str] | None = None, prog: str = "udplab") -> int:
    with argparse_translated():
        args = parser(prog).parse_args(argv)
    args.prog = f"{prog} {args.command}"
    if threading.current_thread() is not threading.main_thread():
        return int(args.run(args))
    # SIGTERM (as from kill) stops a command as Ctrl-C does: cleanly, with status 0.
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return int(args.run(args))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
