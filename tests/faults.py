"""Faults of the file system, for real: a small tmpfs that fills up, a read-only folder.

A full disk is a tmpfs of a few kilobytes (mounting needs root; elsewhere the test is
skipped with the reason); a read-only folder is a read-only tmpfs as root (root ignores
permission bits) and a folder without write permission otherwise.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` KiB at `path`: writes past it fail with ENOSPC."""
    _mount(path, f"size={size_kb}k")
    try:
        yield path
    finally:
        _umount(path)


def grow_disk(path: Path, size_kb: int) -> None:
    """Make the tmpfs at `path` larger (space freed)."""
    subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(path)], check=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """`path` (with what it holds) made read-only for this process."""
    if os.geteuid() != 0:
        items = [path, *path.rglob("*")]
        modes = {item: item.stat().st_mode for item in items}
        for item in items:
            item.chmod(stat.S_IRUSR | (stat.S_IXUSR if item.is_dir() else 0))
        try:
            yield path
        finally:
            for item in reversed(items):
                item.chmod(modes[item])
        return
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        result = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here: {result.stderr.strip()}")
        yield path
    finally:
        _umount(path)
