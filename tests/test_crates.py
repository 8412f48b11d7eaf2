"""The Rust side as two crates: the core (crates/udplab), usable without Python, and the
binding (crates/udplab-python). What a Rust user of the core relies on is checked here: no
PyO3 anywhere in its build, no import cycle between its modules, a package that holds what it
needs, and the notes' programs as a Rust example that really chats."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "crates" / "udplab"
cargo = shutil.which("cargo")
needs_cargo = pytest.mark.skipif(cargo is None, reason="cargo is not installed")


def run_cargo(*args: str, timeout: float = 300) -> str:
    assert cargo is not None
    done = subprocess.run([cargo, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


def code_of(path: Path) -> str:
    """The Rust code of a file without its comments (doc links are not imports)."""
    return "\n".join(line.split("//")[0] for line in path.read_text().splitlines())


def core_imports() -> dict[str, set[str]]:
    """Top-level module of the core -> the other top-level modules its code names."""
    src = CORE / "src"
    modules = {p.stem for p in src.glob("*.rs")} | {p.name for p in src.iterdir() if p.is_dir()}
    modules.discard("lib")
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in src.rglob("*.rs"):
        top = path.relative_to(src).parts[0].removesuffix(".rs")
        if top == "lib":
            continue
        named = set(re.findall(r"\bcrate::([a-z_]+)", code_of(path)))
        graph[top] |= (named & modules) - {top}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                found.append(path[path.index(nxt):] + [nxt])
            elif len(path) < len(graph):
                walk(nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, [start])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()})
    assert not cycles({"a": {"b"}, "b": {"c"}, "c": set()})


def test_no_module_of_the_core_imports_one_that_imports_it_back() -> None:
    graph = core_imports()
    assert graph["platform"] <= {"timing"}, graph["platform"]
    assert "server" not in graph["link"], "the link borrows from the chat server"
    assert cycles(graph) == []


@needs_cargo
def test_pyo3_is_not_in_the_cores_build() -> None:
    tree = run_cargo("tree", "--locked", "-p", "udplab", "-e", "normal,build,dev",
                     "--prefix", "none")
    assert "socket2" in tree  # the tree is the real one
    assert not re.search(r"(?im)^(pyo3|python)", tree), tree


@needs_cargo
def test_the_core_package_holds_its_sources_readme_licence_and_example() -> None:
    listed = set(run_cargo("package", "-p", "udplab", "--list", "--allow-dirty").split())
    for needed in ("Cargo.toml", "README.md", "LICENSE", "src/lib.rs", "src/link/fate.rs",
                   "src/platform/portable.rs", "examples/chat.rs"):
        assert needed in listed, needed
    assert not [p for p in listed if p.endswith((".py", ".so", ".ipynb", ".pyi"))], listed
    assert (CORE / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()


@needs_cargo
def test_the_binding_is_the_only_crate_with_pyo3() -> None:
    meta = json.loads(run_cargo("metadata", "--locked", "--no-deps", "--format-version", "1"))
    deps = {p["name"]: {d["name"] for d in p["dependencies"]} for p in meta["packages"]}
    assert set(deps) == {"udplab", "udplab-python"}
    assert "pyo3" in deps["udplab-python"] and "udplab" in deps["udplab-python"]
    assert "pyo3" not in deps["udplab"]


@pytest.fixture(scope="module")
def chat_example() -> Path:
    if cargo is None:
        pytest.skip("cargo is not installed")
    run_cargo("build", "--locked", "-p", "udplab", "--example", "chat", timeout=600)
    binary = ROOT / "target" / "debug" / "examples" / "chat"
    assert binary.exists()
    return binary


# The fixture may compile the example (cold target/ on a loaded machine: over two minutes).
@pytest.mark.timeout(900)
def test_the_rust_example_chats_as_the_notes_programs_do(chat_example: Path) -> None:
    server = subprocess.Popen([str(chat_example), "server", "0", "--inval", "5"],
                              stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        assert server.stderr is not None
        first = server.stderr.readline()
        port = re.search(r"listening on 127\.0\.0\.1:(\d+)", first)
        assert port, first
        client = subprocess.run(
            [str(chat_example), "client", port[1], "--name", "alice"],
            input="hello\n你好\n/quit\n", capture_output=True, text=True, encoding="utf-8",
            timeout=30)
        assert client.returncode == 0, client.stderr
        assert "alice: b'ACKhello'" in client.stderr
        assert "alice: 'ACK你好'" in client.stderr
        said = []
        for line in server.stderr:
            said.append(line)
            if " left" in line:
                break
        text = "".join(said)
        assert "servicer chat 127.0.0.1:" in text and "says '你好'" in text, text
    finally:
        server.kill()
        server.wait(timeout=10)
        if server.stderr is not None:
            server.stderr.close()


@pytest.mark.timeout(900)
def test_the_rust_example_refuses_bad_arguments_with_one_line(chat_example: Path) -> None:
    done = subprocess.run([str(chat_example), "server", "70000"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith('chat: the port must be a number from 0 to 65535, not "70000"')
    assert "usage:" in done.stderr
