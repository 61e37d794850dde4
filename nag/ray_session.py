"""How every driver of the project starts or joins Ray: one place for the node address and Ray's own messages.

- A Ray started for this machine alone (no cluster address) advertises a loopback node address:
  ``$NAG_RAY_NODE_IP`` when set, else ``127.0.0.2``. (Ray swaps a plain ``127.0.0.1`` for the machine's
  network address, so the loopback alias is needed; Linux answers on all of 127/8.) Joining a cluster keeps
  the address Ray picks unless ``$NAG_RAY_NODE_IP`` names one.
- Ray's own messages to a driver (a worker that died, a task it retries) are printed by Ray on stdout, where
  they would mix with the command's results. They go to a log file instead (:func:`ray_log_path`), and the
  first one puts a single line on stderr that says where.

Known limit, measured with ``ss -tlnp`` on Ray 2.60: whatever the node address, Ray's GCS, raylet and
worker gRPC servers listen on every interface; the dashboard agent and runtime-env agent follow the node
address. Token authentication (Ray's default, kept by the shipped configs) is what guards those ports.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["LOOPBACK_NODE_IP", "divert_ray_messages", "init_ray", "local_node_ip", "ray_log_path"]

LOOPBACK_NODE_IP = "127.0.0.2"


def local_node_ip() -> str:
    """The node address of a Ray started for this machine alone."""
    return os.environ.get("NAG_RAY_NODE_IP") or LOOPBACK_NODE_IP


def ray_log_path() -> Path:
    """Where Ray's messages to this driver go: ``$NAG_CACHE_DIR/logs/ray-driver.log`` (default ``~/.cache/nag``)."""
    return Path(os.environ.get("NAG_CACHE_DIR", "~/.cache/nag")).expanduser() / "logs" / "ray-driver.log"


def init_ray(address: str | None = None, **options: Any) -> None:
    """``ray.init`` as a driver of ours: loopback when starting a Ray of our own, worker logs kept on their
    nodes, Ray's messages to the driver in :func:`ray_log_path`.

    ``address`` None or ``"local"`` starts a new Ray here; anything else joins that cluster.
    """
    import ray

    init: dict[str, Any] = {"log_to_driver": False, **options}
    if address in (None, "local"):
        init.setdefault("_node_ip_address", local_node_ip())
    elif os.environ.get("NAG_RAY_NODE_IP"):
        init.setdefault("_node_ip_address", os.environ["NAG_RAY_NODE_IP"])
    init["address"] = address or "local"  # never a cluster that RAY_ADDRESS happens to name
    ray.init(**init)
    divert_ray_messages()


def divert_ray_messages(path: Path | None = None) -> Path:
    """Send the messages Ray prints on a driver's stdout (``(raylet) A worker died ...``) to a log file.

    Ray prints them through ``ray._private.worker.print_to_stdstream``, looked up at each message; this
    replaces that function (no public hook exists in Ray 2.60). Where Ray lacks it, nothing changes, and
    ``tests/farm/test_table_cli.py`` fails on the chatter it then finds on stdout.
    """
    target = path or ray_log_path()
    try:
        from ray._private import worker
    except ImportError:  # pragma: no cover - Ray is a dependency
        return target
    current = getattr(worker, "print_to_stdstream", None)
    if current is None or getattr(current, "nag_log", None) == target:
        return target
    announced: list[bool] = []

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with target.open("a", encoding="utf-8") as log:
            for line in data.get("lines", []):
                log.write(f"{stamp} ({data.get('pid', 'ray')}) {line}\n")
        if not announced:
            announced.append(True)
            print(f"nag: Ray reported a problem on the cluster; its messages are in {target}", file=sys.stderr)

    to_log.nag_log = target  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_log
    return target
