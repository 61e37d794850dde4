"""What the benchmark scripts that run ``nag`` on this machine's CPU share: a fresh folder and its environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def local_cpu_workspace(prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh folder (its own agents config: this machine's CPUs, no phones; its own model cache) and the
    environment a ``nag`` process needs to use it, with Ray on loopback and no usage reports."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    (work / "agents.yaml").write_text("adb: null\n")
    env = {**os.environ, "NAG_AGENTS_CONFIG": str(work / "agents.yaml"), "NAG_CACHE_DIR": str(work / "cache")}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no traffic off this machine
    env.setdefault("NAG_RAY_NODE_IP", "127.0.0.2")
    return work, env
