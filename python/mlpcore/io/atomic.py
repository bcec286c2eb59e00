"""Atomic file writes: the bytes go to a temporary file in the target's directory, which is
flushed, fsync'ed and renamed over the target with ``os.replace``; then the directory is
fsync'ed. A crash or an error in the middle leaves the previous file as it was."""

from __future__ import annotations

import os
import tempfile
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]

_CHUNK = 1 << 20  # bytes per write call


def _write_chunks(f, data: bytes) -> None:
    """Write ``data`` to the open file ``f`` (a separate function so tests can fail a save midway)."""
    view = memoryview(data)
    for i in range(0, len(view), _CHUNK):
        f.write(view[i:i + _CHUNK])


def _file_mode(path: str) -> int:
    """The permission bits for ``path``: those of the file being replaced, else 0o666 & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    mask = os.umask(0)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, flush, fsync,
    ``os.replace``, fsync of the directory. On any error the temp file is removed and ``path``
    is left as it was. An ``OSError`` names ``path`` (the caller's), never the temp file."""
    path = os.fspath(path)
    try:
        _atomic_write(path, data)
    except OSError as e:
        if e.errno is None:
            raise
        if os.path.isdir(path):  # os.replace's EISDIR names the temp file and the directory
            raise IsADirectoryError(e.errno, "is a directory, not a file path", path) from None
        raise OSError(e.errno, e.strerror, path) from None  # the subclass follows errno


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would (or the replaced file's)
        os.chmod(tmp, _file_mode(path))
        with os.fdopen(fd, "wb") as f:
            _write_chunks(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if os.name == "posix":  # make the rename itself durable; directories cannot be opened on Windows
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
