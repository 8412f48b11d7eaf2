"""Checks an sdist's file list: what a build from it and its users need is in, clutter is out.

    python scripts/sdist_contents.py dist/udplab-X.Y.Z.tar.gz

Exits 1 and names every problem. ``problems()`` is tested in tests/test_sdist.py.
"""

from __future__ import annotations

import sys
import tarfile

# Paths (below the sdist's top folder) that must be there: the build inputs (the workspace, the
# core crate and the binding crate), the licence, the README shown on the package page, the type
# stubs and the py.typed marker that mypy reads.
REQUIRED = [
    "PKG-INFO",
    "pyproject.toml",
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "LICENSE",
    "crates/udplab/Cargo.toml",
    "crates/udplab/src/lib.rs",
    "crates/udplab-python/Cargo.toml",
    "crates/udplab-python/src/lib.rs",
    "python/udplab/__init__.py",
    "python/udplab/_core.pyi",
    "python/udplab/py.typed",
]
# Folders that must never be packed: build output, environments, caches, VCS data.
FORBIDDEN_DIRS = {
    "target",
    ".venv",
    "dist",
    ".git",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
}
# Built files that would be stale or platform-specific in a source archive.
FORBIDDEN_SUFFIXES = (".so", ".pyd", ".dylib", ".pyc", ".whl")


def problems(names: list[str]) -> list[str]:
    """What is wrong with an sdist whose members are ``names`` (``top/relative/path``)."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) != 1:
        return [f"expected one top folder, found {sorted(tops)}"]
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    found = [f"missing {path}" for path in REQUIRED if path not in inner]
    for path in sorted(inner):
        parts = path.split("/")
        bad_dir = next((p for p in parts[:-1] if p in FORBIDDEN_DIRS), None)
        if bad_dir is not None:
            found.append(f"must not contain {bad_dir}/: {path}")
        elif path.endswith(FORBIDDEN_SUFFIXES):
            found.append(f"must not contain a built file: {path}")
    return found


def main() -> int:
    (path,) = sys.argv[1:]
    with tarfile.open(path) as archive:
        names = [m.name for m in archive.getmembers() if not m.isdir()]
    found = problems(names)
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    if not found:
        print(f"{path}: {len(names)} files, all required ones present, no build output")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
