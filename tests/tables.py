"""A latency store holding a synthetic ofa-mbv3 block table: the start of many farm and search tests."""

from __future__ import annotations

from collections.abc import Callable

from agents import MeasurementSpec
from farm.store import Store, TableKey
from nag.space import get_space


def put_block_table(
    store: Store,
    mean_ms: Callable[[int, str], float],
    *,
    resolution: int = 64,
    width: float = 1.2,
    fingerprint: str = "f",
    spec: MeasurementSpec | None = None,
    std_fraction: float | None = None,
    count: int = 30,
) -> tuple[TableKey, dict[str, float]]:
    """Every block of ofa-mbv3 at the setting, block i (key k) at ``mean_ms(i, k)`` (std 0.01 ms, or ``std_fraction``
    of the mean; ``count`` samples),
    in an ort-cpu table of ``spec`` (default: the default spec); returns the table and the means by key."""
    table = TableKey(
        space="ofa-mbv3", width=width, resolution=resolution, device="ort-cpu", fingerprint=fingerprint,
        runtime="onnxruntime", runtime_version="1", spec_key=(spec or MeasurementSpec()).key(),
    )  # fmt: skip
    blocks = get_space("ofa-mbv3").all_blocks(width=width, resolution=resolution)
    means = {block.key: mean_ms(i, block.key) for i, block in enumerate(blocks)}
    for key, mean in means.items():
        std = 0.01 if std_fraction is None else std_fraction * mean
        store.put_summary(table, "block", key, mean_ms=mean, std_ms=std, count=count)
    return table, means
