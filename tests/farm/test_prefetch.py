"""Exporting a local farm's models beforehand, on several processes, into the cache its device actors read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.errors import UnknownDeviceError
from farm.scheduler import Task
from farm.tables import block_tasks, prefetch_exports, validation_archs
from farm.worker import task_blocks
from nag.space.export import cache_path, cached_export, run_exported


def test_prefetch_exports_what_the_cache_lacks_once(tmp_path: Path) -> None:
    blocks = block_tasks("ofa-mbv3", width=1.0, resolutions=[32])[:3]
    network = Task("ofa-mbv3", 1.0, 32, "network", validation_archs("ofa-mbv3", 1, seed=3)[0])
    tasks = [*blocks, network, blocks[0]]  # a repeat is exported once
    done: list[int] = []
    assert prefetch_exports(tasks, kind="ort-cpu", cache_dir=str(tmp_path), processes=2, on_done=done.append) == 4
    assert done == [1, 2, 3, 4]
    paths = [cache_path(task_blocks(t), fmt="onnx", cache_dir=tmp_path) for t in tasks]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({p.name for p in paths})
    # The device worker's own lookup finds the same files: it exports nothing more.
    assert cached_export(task_blocks(network), fmt="onnx", cache_dir=tmp_path) == paths[3]
    assert run_exported(paths[3], np.zeros((1, 3, 32, 32), dtype=np.float32)).shape == (1, 1000)
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert prefetch_exports(tasks, kind="ort-cpu", cache_dir=str(tmp_path)) == 0
    assert [p.stat().st_mtime_ns for p in paths] == stamps


def test_prefetch_names_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(UnknownDeviceError, match="unknown agent kind 'tpu'"):
        prefetch_exports(block_tasks("ofa-mbv3", width=1.0, resolutions=[32])[:1], kind="tpu", cache_dir=str(tmp_path))


def test_prefetch_refuses_a_kind_whose_devices_differ_in_format(tmp_path: Path) -> None:
    """ssh boards run ONNX or .tflite by their runtime: exporting for the kind would guess (and once did)."""
    from agents.errors import SpecError

    with pytest.raises(SpecError, match="ssh devices run different model formats"):
        prefetch_exports(block_tasks("ofa-mbv3", width=1.0, resolutions=[32])[:1], kind="ssh", cache_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_validation_archs_are_distinct_and_seeded() -> None:
    first = validation_archs("ofa-mbv3", 20, seed=1)
    assert first == validation_archs("ofa-mbv3", 20, seed=1) and len(set(first)) == len(first)
    assert first != validation_archs("ofa-mbv3", 20, seed=2)
