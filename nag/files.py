"""Durable file writes, for every layer: a file is replaced whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], *, suffix: str = ".tmp") -> Path:
    """Write a file durably: ``write(tmp)`` fills a temporary file beside ``path``, which is fsynced and renamed
    over ``path``, and the folder is fsynced. A crash leaves the old file or the new one, never a part. The file
    gets the usual permissions (0666 less the umask). ``suffix`` ends the temporary name (converters that
    choose a format by the file's extension need the real one). Returns ``path`` as a :class:`Path`.
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=suffix)
    os.close(fd)
    temp = Path(name)
    try:
        write(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, file)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    folder = os.open(file.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return file


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda temp: temp.write_bytes(data))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
