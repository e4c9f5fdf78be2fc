"""Small file helpers shared by every module that writes user files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from nasprof.errors import InputError


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is not a directory")
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:  # read-only or full file system, no permission, a /proc-like directory
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # mkstemp creates the file 0600; give it the mode an ordinary open() would (0666 minus the umask),
        # or keep the mode of the file it replaces, so results stay readable by others as before.
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    # Linux reports the umask in /proc; elsewhere read it by setting it and putting it back (which is not
    # thread-safe, hence the /proc route first).
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file, also through symlinks and hard links."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare where they would resolve to
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: str | Path, *, inputs: Iterable[str | Path | None] = (), label: str = "") -> Path:
    """Refuse to write ``path`` before any work is done: when it is one of ``inputs`` (a command must never
    overwrite what it reads), a directory, or in a directory that does not exist or cannot be written.
    ``label`` names the output in the message (a CLI flag, or a library term)."""
    path = Path(path)
    name = f"{label} {path}" if label else str(path)
    for given in inputs:
        if given is not None and str(given) != "-" and same_file(path, given):
            raise InputError(f"refusing to write {name}: it is an input of this command ({given}) and would "
                             "be overwritten; write to another file")
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"cannot write {name}: it is a directory; give a file name")
    if parent.exists() and not parent.is_dir():
        raise InputError(f"cannot write {name}: {parent} is not a directory")
    if not parent.is_dir():
        raise InputError(f"cannot write {name}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write {name}: permission denied")
    if path.exists() and not path.is_file():
        raise InputError(f"cannot write {name}: it is a special file (a device, pipe or socket), not a "
                         "regular file; give another path")
    try:  # a read-only file system (or /proc) answers only to a real attempt
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
            # /proc and /sys answer "No such file" to a new file in an existing directory: say what is true.
            raise InputError(f"cannot write {name}: directory {parent} does not accept new files (permission "
                             "denied, or a read-only or special file system); write elsewhere") from None
        raise InputError(f"cannot write {name}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)
    return path


def sqlite_header_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be an SQLite database (None when it may be one): not a regular file, or bytes
    that are not SQLite's header. SQLite itself opens /proc/version or an empty file as an empty database."""
    p = Path(path)
    if not p.is_file():
        return "not a regular file"
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if head and head != b"SQLite format 3\x00":
        return "not an SQLite database"
    if not head and p.stat().st_size == 0 and str(p).startswith(("/proc/", "/sys/")):
        return "a file of the kernel's special file system, not an SQLite database"
    return None
