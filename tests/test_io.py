"""``nasprof._io.atomic_write_*``: every user file goes through it; its failures must be ``InputError``s."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nasprof._io import atomic_write_bytes, atomic_write_text
from nasprof.errors import InputError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_and_replaces_with_the_usual_mode(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    old = os.umask(0o027)
    try:
        assert atomic_write_text(out, "one\n") == out
    finally:
        os.umask(old)
    assert out.read_text() == "one\n"
    # Not mkstemp's 0600: what open() would give under the umask (0666 & ~0027).
    assert _mode(out) == 0o640
    out.chmod(0o604)
    atomic_write_bytes(out, b"two\n")
    assert out.read_bytes() == b"two\n" and _mode(out) == 0o604  # a replaced file keeps its mode
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing/r.json", "directory {d}/missing does not exist"),
        ("file.txt/r.json", "{d}/file.txt is not a directory"),
        ("sub", "cannot write {d}/sub: it is a directory"),
    ],
)
def test_bad_targets_raise_input_error_and_leave_nothing(tmp_path: Path, target: str, message: str) -> None:
    (tmp_path / "file.txt").write_text("keep\n")
    (tmp_path / "sub").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError) as info:
        atomic_write_text(tmp_path / target, "{}\n")
    assert message.format(d=tmp_path) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "file.txt").read_text() == "keep\n"


def test_os_errors_become_input_errors() -> None:
    # /proc refuses new files (ENOENT) even for root, unlike a chmod-ed directory.
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    with pytest.raises(InputError, match="cannot write /proc/r.json: No such file or directory"):
        atomic_write_text(Path("/proc/r.json"), "{}\n")
