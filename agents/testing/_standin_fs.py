"""The filesystem of a simulated device: a host folder, plus read-only files computed at each read.

Device path ``/a/b`` is ``root/a/b`` on the host; paths are normalised first (``..`` never climbs out of
``root``). Computed files (sysfs: thermal zones, CPU frequencies; ``/dev/null``) live in their own
subtrees, which shadow the host folder: they are listed, stat'ed, read and globbed like files, and any
write to them fails with ``EACCES``, as it does for adb's ``shell`` user. Errors are :class:`OSError` with
the errno a device would give, so callers print ``os.strerror(errno)`` as toybox does.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import posixpath
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["DeviceFS", "FileStat", "normalize"]

_SYSFS_FILE_SIZE = 4096  # what stat() reports for a sysfs attribute


def normalize(path: str, cwd: str = "/") -> str:
    """The absolute, normalised device path of ``path`` seen from ``cwd`` (never above ``/``)."""
    joined = posixpath.normpath(posixpath.join(cwd, path))
    return "/" + joined.lstrip("/")


def _error(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


@dataclass(frozen=True)
class FileStat:
    """What ``stat`` tells of a device path."""

    mode: int  # st_mode: type bits and permissions
    size: int  # bytes
    mtime: int  # seconds since the epoch
    ino: int  # inode number (host inode; a stable hash for computed files)
    nlink: int  # link count

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)


class DeviceFS:
    """A device's files. Thread-safe as far as the host filesystem is (each call is independent).

    ``computed`` maps absolute device paths to functions returning the file's bytes at each read; the
    top-level folders of those paths (``/sys``, ``/dev``) are then entirely computed.
    """

    def __init__(self, root: Path, computed: Mapping[str, Callable[[], bytes]]) -> None:
        self.root = root
        self._files = {normalize(path): read for path, read in computed.items()}
        self._dirs: set[str] = set()
        for path in self._files:
            parent = posixpath.dirname(path)
            while parent != "/":
                self._dirs.add(parent)
                parent = posixpath.dirname(parent)
        self._tops = {"/" + path.split("/")[1] for path in self._files}

    # -- where a path lives

    def host_path(self, path: str) -> Path:
        """The host file behind absolute device ``path`` (not meaningful for computed paths)."""
        return self.root.joinpath(*[part for part in normalize(path).split("/") if part])

    def is_computed(self, path: str) -> bool:
        """Whether ``path`` is in a computed subtree (whether or not it exists)."""
        path = normalize(path)
        return any(path == top or path.startswith(top + "/") for top in self._tops)

    def _check_writable(self, path: str) -> None:
        if self.is_computed(path) or normalize(path) == "/":
            raise _error(errno.EACCES, path)

    # -- reading

    def stat(self, path: str) -> FileStat:
        """``stat`` of absolute device ``path``; raises ``OSError(ENOENT)`` when it does not exist."""
        path = normalize(path)
        if self.is_computed(path):
            inode = hash(path) & 0xFFFFFFF
            now = int(time.time())
            if path in self._files:
                return FileStat(stat.S_IFREG | 0o444, _SYSFS_FILE_SIZE, now, inode, 1)
            if path in self._dirs or path in self._tops:
                return FileStat(stat.S_IFDIR | 0o755, 0, now, inode, 2)
            raise _error(errno.ENOENT, path)
        try:
            found = os.stat(self.host_path(path))
        except OSError as exc:
            raise _error(exc.errno or errno.ENOENT, path) from None
        return FileStat(found.st_mode, found.st_size, int(found.st_mtime), found.st_ino, found.st_nlink)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except OSError:
            return False
        return True

    def read(self, path: str) -> bytes:
        """The bytes of file ``path``; raises ``OSError`` (ENOENT, EISDIR)."""
        path = normalize(path)
        if self.stat(path).is_dir:
            raise _error(errno.EISDIR, path)
        if path in self._files:
            return self._files[path]()
        return self.host_path(path).read_bytes()

    def listdir(self, path: str) -> list[str]:
        """Sorted names in directory ``path`` (without ``.`` and ``..``); raises ``OSError``."""
        path = normalize(path)
        if not self.stat(path).is_dir:
            raise _error(errno.ENOTDIR, path)
        names: set[str] = set()
        if not self.is_computed(path):
            names.update(os.listdir(self.host_path(path)))
        prefix = path.rstrip("/") + "/"
        for entry in (*self._files, *self._dirs):
            if entry.startswith(prefix):
                names.add(entry[len(prefix) :].split("/")[0])
        if path == "/":
            names.update(top.lstrip("/") for top in self._tops)
        return sorted(names)

    # -- writing

    def open_write(self, path: str, *, append: bool = False) -> BinaryIO:
        """A file opened for writing (truncated unless ``append``); its folder must exist."""
        path = normalize(path)
        self._check_writable(path)
        host = self.host_path(path)
        if host.is_dir():
            raise _error(errno.EISDIR, path)
        if not host.parent.is_dir():
            raise _error(errno.ENOENT, path)
        return host.open("ab" if append else "wb")

    def mkdir(self, path: str, *, parents: bool = False, mode: int = 0o771) -> None:
        """``mkdir`` (``-p`` with ``parents``: existing folders are fine); raises ``OSError``."""
        path = normalize(path)
        if parents and self.exists(path):
            if not self.stat(path).is_dir:
                raise _error(errno.EEXIST, path)
            return
        self._check_writable(path)
        host = self.host_path(path)
        try:
            host.mkdir(mode=mode, parents=parents, exist_ok=parents)
        except OSError as exc:
            raise _error(exc.errno or errno.EIO, path) from None

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file (a folder too, with ``recursive``); raises ``OSError`` (ENOENT, EISDIR)."""
        path = normalize(path)
        found = self.stat(path)
        self._check_writable(path)
        host = self.host_path(path)
        if found.is_dir:
            if not recursive:
                raise _error(errno.EISDIR, path)
            shutil.rmtree(host)
        else:
            host.unlink()

    def rename(self, source: str, target: str) -> None:
        """Move ``source`` over ``target`` atomically (as rename(2)); raises ``OSError``."""
        source, target = normalize(source), normalize(target)
        self.stat(source)
        self._check_writable(source)
        self._check_writable(target)
        os.replace(self.host_path(source), self.host_path(target))

    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of ``path``; raises ``OSError``."""
        self.stat(path)
        self._check_writable(path)
        os.chmod(self.host_path(path), mode & 0o7777)

    def set_mtime(self, path: str, mtime: int) -> None:
        os.utime(self.host_path(path), (mtime, mtime))

    # -- globbing

    def glob(self, pattern: str, cwd: str = "/") -> list[str]:
        """Paths matching ``pattern`` (``fnmatch`` syntax per component, as sh expands), sorted.

        Matches are spelled as the pattern is: relative patterns give relative paths. Quote a literal
        ``*``, ``?`` or ``[`` with :func:`glob.escape`. A leading ``.`` in a name is matched only by a
        literal ``.``, as in sh.
        """
        absolute = pattern.startswith("/")
        parts = [part for part in pattern.split("/") if part]
        found: list[tuple[str, str]] = [("/" if absolute else "", normalize(".", cwd))]  # (as spelled, device path)
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            literal = _unescape(part)
            step: list[tuple[str, str]] = []
            for spelled, device in found:
                join = spelled + ("" if spelled in ("", "/") else "/")
                if glob.escape(literal) == part:
                    candidate = posixpath.join(device, literal)
                    if last or self._is_dir(candidate):
                        step.append((join + literal, candidate))
                    continue
                try:
                    names = self.listdir(device)
                except OSError:
                    continue
                for name in names:
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part) and (last or self._is_dir(posixpath.join(device, name))):
                        step.append((join + name, posixpath.join(device, name)))
            found = step
        return sorted(spelled for spelled, device in found if self.exists(device))

    def _is_dir(self, path: str) -> bool:
        try:
            return self.stat(path).is_dir
        except OSError:
            return False


def _unescape(part: str) -> str:
    """Undo :func:`glob.escape` (``[*]`` -> ``*``); magic characters are left as they are."""
    for char in "*?[":
        part = part.replace(f"[{char}]", char)
    return part
