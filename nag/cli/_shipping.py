"""What ``nag submit`` uploads with a job: the project's own files, never secrets or databases by accident.

Without ``--include``, the files are those git knows as the project's (tracked, plus untracked ones that
``.gitignore`` does not exclude), less anything that looks like a secret or a database (:data:`NEVER_SHIPPED`),
even if tracked. With ``--include PATTERN ...``, exactly the files matching the patterns are shipped: an
explicit choice, shipped as named. A folder that is not a git checkout needs ``--include``.

The chosen files are copied into a fresh staging folder, and that folder is what Ray uploads, so nothing
outside the list can travel with the job.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nag.errors import NagError

__all__ = ["NEVER_SHIPPED", "Shipment", "choose_files", "stage"]

# File-name patterns left out of an automatic selection: keys and credentials, environment files, databases.
NEVER_SHIPPED = (
    ".env", ".env.*", "*.env", ".envrc", ".netrc", ".pgpass", "auth_token", "credentials", "credentials.*",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.gpg", "*.asc",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "known_hosts", "authorized_keys",
    "*.db", "*.db-wal", "*.db-shm", "*.sqlite", "*.sqlite3",
)  # fmt: skip


@dataclass(frozen=True)
class Shipment:
    root: Path
    files: tuple[str, ...]  # POSIX paths relative to root
    left_out: tuple[str, ...]  # what the automatic selection refused (secrets, databases)
    size_bytes: int

    def summary(self) -> str:
        line = f"shipping {len(self.files)} files ({self.size_bytes / 1024:.0f} KiB) from {self.root}"
        if self.left_out:
            shown = ", ".join(self.left_out[:8]) + (f" and {len(self.left_out) - 8} more" if len(self.left_out) > 8 else "")
            line += f"; left out as secrets or databases: {shown} (name them with --include to ship them)"
        return line


def _never_shipped(path: str) -> bool:
    name = PurePosixPath(path).name
    return any(fnmatch.fnmatch(name, pattern) for pattern in NEVER_SHIPPED)


def _git_files(root: Path) -> list[str] | None:
    """The project's files as git sees them, or None when ``root`` is not inside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
    except FileNotFoundError:
        return None
    if listed.returncode != 0:
        return None
    return [name for name in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def choose_files(root: str | Path, include: Sequence[str] = ()) -> Shipment:
    """The files to ship from ``root``; see the module docstring for the rules."""
    base = Path(root).resolve()
    if not base.is_dir():
        raise NagError(f"--working-dir {str(root)!r} is not a folder; give the project folder to ship")
    left_out: list[str] = []
    if include:
        every = [p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file() and not p.is_symlink()]
        files = sorted(f for f in every if any(fnmatch.fnmatch(f, pattern) for pattern in include))
        if not files:
            raise NagError(
                f"--include {' '.join(include)!r} matches no file under {base}; patterns are relative, e.g. 'src/*.py'"
            )
    else:
        listed = _git_files(base)
        if listed is None:
            raise NagError(
                f"{base} is not a git checkout, so nag submit cannot tell the project's files from the rest: "
                "run it from the project's checkout, or name what to ship with --include PATTERN (e.g. --include '*.py')"
            )
        if not listed:
            raise NagError(
                f"git lists no project files under {base} (all ignored, or an empty checkout); "
                "name what to ship with --include PATTERN"
            )
        files, left_out = [], []
        for name in sorted(listed):
            if not (base / name).is_file() or (base / name).is_symlink():
                continue  # deleted in the work tree, a submodule, or a link that could point outside
            (left_out if _never_shipped(name) else files).append(name)
    size = sum((base / name).stat().st_size for name in files)
    return Shipment(root=base, files=tuple(files), left_out=tuple(left_out), size_bytes=size)


def stage(shipment: Shipment, folder: Path) -> Path:
    """Copy the shipment's files into ``folder`` (created), the folder Ray then uploads."""
    for name in shipment.files:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shipment.root / name, target)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
