"""The sdist check of scripts/sdist_contents.py, on file lists (`bash scripts/check` runs it on
the real sdist that `maturin sdist` builds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sdist_contents.py"
spec = importlib.util.spec_from_file_location("sdist_contents", SCRIPT)
assert spec is not None and spec.loader is not None
sdist_contents = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sdist_contents)

GOOD = [f"udplab-0.1.0/{path}" for path in sdist_contents.REQUIRED] + [
    "udplab-0.1.0/crates/udplab/src/socket.rs",
    "udplab-0.1.0/tests/test_chat.py",
]


def test_a_complete_clean_sdist_passes() -> None:
    assert sdist_contents.problems(GOOD) == []


def test_missing_licence_and_stubs_are_named() -> None:
    names = [n for n in GOOD if not n.endswith(("LICENSE", "_core.pyi"))]
    assert sdist_contents.problems(names) == [
        "missing LICENSE",
        "missing python/udplab/_core.pyi",
    ]


def test_build_output_and_environments_are_refused() -> None:
    names = GOOD + [
        "udplab-0.1.0/target/release/libudplab.so",
        "udplab-0.1.0/.venv/bin/python",
        "udplab-0.1.0/python/udplab/__pycache__/chat.cpython-311.pyc",
        "udplab-0.1.0/python/udplab/_core.abi3.so",
    ]
    assert sdist_contents.problems(names) == [
        "must not contain .venv/: .venv/bin/python",
        "must not contain __pycache__/: python/udplab/__pycache__/chat.cpython-311.pyc",
        "must not contain a built file: python/udplab/_core.abi3.so",
        "must not contain target/: target/release/libudplab.so",
    ]


def test_more_than_one_top_folder_is_refused() -> None:
    assert sdist_contents.problems(GOOD + ["other/README.md"]) != []
