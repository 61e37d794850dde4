"""Subnet accuracy: batch-norm recalibration, top-1, and resumable evaluation of many subnets (optionally on Ray).

One subnet is evaluated as OFA does: extract it, reset its batch-norm statistics and re-estimate them as a
cumulative average over a fixed set of training images (OFA's ``set_running_statistics``; OFA uses 2,000),
then count top-1 hits on the validation set.

Results go to a CSV table ``arch,accuracy,n_val`` (accuracy a fraction), one row appended and flushed per
subnet as it finishes; a rerun reads the table and skips the architectures already in it, so a killed
job resumes where it stopped (a torn last line is dropped on reading).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from nag.accuracy.supernet.data import Data, DataSpec, load_data
from nag.accuracy.supernet.errors import DataError
from nag.accuracy.supernet.network import OFAMobileNetV3Supernet, load_supernet
from nag.errors import SettingError
from nag.space.ofa_mbv3 import MBV3Arch, OFAMobileNetV3Space

__all__ = ["EvalSettings", "ResultsTable", "SubnetEvaluator", "evaluate", "recalibrate_bn", "top1"]

TABLE_HEADER = ("arch", "accuracy", "n_val")
_SPACE = OFAMobileNetV3Space()


@dataclass(frozen=True)
class EvalSettings:
    """How one subnet is evaluated."""

    calib_images: int = 2000  # training images for batch-norm recalibration (fewer if the train set is smaller)
    batch_size: int = 200  # images per forward pass, calibration and validation
    max_val: int | None = None  # evaluate on the first max_val validation images; None: all
    seed: int = 0  # which training images calibrate (a seeded choice, the same for every subnet)
    device: str = "cpu"  # torch device of the subnet
    channels_last: bool = True  # NHWC subnet and batches: ~3x faster forward passes on CPU (oneDNN)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset every batch-norm's statistics and re-estimate them as the cumulative average over ``batches``.

    The model is run in train mode (momentum ``None``) and left in eval mode with the momenta restored.
    Returns the number of images seen; raises :class:`DataError` if ``batches`` is empty.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    seen = 0
    try:
        for images in batches:
            model(images)
            seen += len(images)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise DataError("batch-norm recalibration got no training images; the training set is empty")
    return seen


@torch.no_grad()
def top1(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], *, device: str = "cpu",
    memory_format: torch.memory_format = torch.contiguous_format,
) -> tuple[float, int]:  # fmt: skip
    """(top-1 accuracy fraction, number of images) of ``model`` in eval mode over ``loader``."""
    model.eval()
    hits = total = 0
    for images, labels in loader:
        predicted = model(images.to(device, memory_format=memory_format)).argmax(dim=1).cpu()
        hits += int((predicted == labels).sum())
        total += len(labels)
    if total == 0:
        raise DataError("the validation set is empty; top-1 accuracy is undefined")
    return hits / total, total


class SubnetEvaluator:
    """Evaluates subnets of one supernet on one data set (loaded once); the logic behind a Ray worker."""

    def __init__(self, supernet: OFAMobileNetV3Supernet | str | Path, data: DataSpec | Data, settings: EvalSettings) -> None:
        self.supernet = supernet if isinstance(supernet, OFAMobileNetV3Supernet) else load_supernet(supernet)
        self.data = data if isinstance(data, Data) else load_data(data)
        if self.data.num_classes != self.supernet.num_classes:
            raise SettingError(
                f"the supernet classifies {self.supernet.num_classes} classes but the data has {self.data.num_classes}; "
                "evaluate on the data set it was trained for"
            )
        self.settings = settings
        n_train = len(self.data.train)  # type: ignore[arg-type]
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(settings.seed))
        self.calib = Subset(self.data.train, order[: min(settings.calib_images, n_train)].tolist())
        n_val = len(self.data.val)  # type: ignore[arg-type]
        self.val = self.data.val if settings.max_val is None else Subset(self.data.val, range(min(settings.max_val, n_val)))

    @property
    def _layout(self) -> torch.memory_format:
        return torch.channels_last if self.settings.channels_last else torch.contiguous_format

    def _calib_batches(self) -> Iterator[torch.Tensor]:
        for images, _ in DataLoader(self.calib, batch_size=self.settings.batch_size):
            yield images.to(self.settings.device, memory_format=self._layout)

    def evaluate(self, arch: MBV3Arch | str) -> tuple[str, float, int]:
        """(canonical arch, top-1 fraction, validation images) of one subnet, batch-norm recalibrated."""
        subnet = self.supernet.extract(arch).to(self.settings.device, memory_format=self._layout)  # type: ignore[call-overload]
        recalibrate_bn(subnet, self._calib_batches())
        val = DataLoader(self.val, batch_size=self.settings.batch_size)
        accuracy, n_val = top1(subnet, val, device=self.settings.device, memory_format=self._layout)
        return str(self.supernet.active_arch), accuracy, n_val


class ResultsTable:
    """The CSV table ``arch,accuracy,n_val``: read what is there, append rows durably (flush + fsync)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, tuple[float, int]]:
        """Rows by canonical arch. A last line without its newline (a killed write) is cut off the file."""
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(raw.rfind(b"\n") + 1)
            raw = raw[: raw.rfind(b"\n") + 1]
        rows = list(csv.reader(raw.decode().splitlines()))
        if not rows:
            return {}
        if tuple(rows[0]) != TABLE_HEADER:
            raise DataError(
                f"{str(self.path)!r} starts with {rows[0]}, not the header {list(TABLE_HEADER)}; choose another --out"
            )
        found: dict[str, tuple[float, int]] = {}
        for line, row in enumerate(rows[1:], start=2):
            try:
                found[row[0]] = (float(row[1]), int(row[2]))
            except (IndexError, ValueError):
                raise DataError(f"{str(self.path)!r} line {line} is not 'arch,accuracy,n_val': {row}; fix or delete it") from None
        return found

    def append(self, arch: str, accuracy: float, n_val: int) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(TABLE_HEADER)
            writer.writerow((arch, f"{accuracy:.6f}", n_val))
            handle.flush()
            os.fsync(handle.fileno())


def evaluate(
    supernet: OFAMobileNetV3Supernet | str | Path,
    archs: Sequence[MBV3Arch | str],
    data: DataSpec | Data,
    *,
    out: str | Path | None = None,
    settings: EvalSettings | None = None,
    use_ray: bool = False,
    num_workers: int | None = None,
    progress: bool = True,
    on_result: Callable[[str, float, int], None] | None = None,
) -> dict[str, tuple[float, int]]:
    """Top-1 of every architecture: ``{canonical arch: (accuracy fraction, n_val)}``, in any order.

    With ``out``, rows already in that CSV are reused, not recomputed, and new rows are appended as they
    finish. With ``use_ray``, subnets are spread over ``num_workers`` Ray actors (default: one per CPU of
    the cluster; one GPU each when ``settings.device`` is CUDA) on the Ray already initialised, or a local one
    started and shut down here; ``supernet`` must then be a checkpoint path and ``data`` a :class:`DataSpec`,
    which every worker loads. Without Ray everything runs in this process.
    """
    settings = settings or EvalSettings()
    table = ResultsTable(out) if out is not None else None
    results = table.read() if table is not None else {}
    wanted = list(dict.fromkeys(str(_SPACE.parse(a) if isinstance(a, str) else a) for a in archs))
    todo = [a for a in wanted if a not in results]

    def record(arch: str, accuracy: float, n_val: int) -> None:
        results[arch] = (accuracy, n_val)
        if table is not None:
            table.append(arch, accuracy, n_val)
        if on_result is not None:
            on_result(arch, accuracy, n_val)

    from tqdm import tqdm

    with tqdm(total=len(wanted), initial=len(wanted) - len(todo), desc="subnets", unit="net", disable=not progress) as bar:
        if not todo:
            pass
        elif use_ray:
            for row in _evaluate_on_ray(supernet, todo, data, settings, num_workers):
                record(*row)
                bar.update(1)
        else:
            evaluator = SubnetEvaluator(supernet, data, settings)
            for arch in todo:
                record(*evaluator.evaluate(arch))
                bar.update(1)
    return {a: results[a] for a in wanted}


def _evaluate_on_ray(
    supernet: Any, archs: list[str], data: Any, settings: EvalSettings, num_workers: int | None
) -> Iterator[tuple[str, float, int]]:
    if not isinstance(supernet, (str, Path)) or not isinstance(data, DataSpec):
        raise SettingError(
            "evaluation on Ray needs a checkpoint path and a DataSpec (workers load both); save the supernet first"
        )
    import ray
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        from nag.ray_session import init_ray

        init_ray(os.environ.get("RAY_ADDRESS"))  # a cluster named the usual way, else a Ray of this machine
    try:
        gpu = settings.device.startswith("cuda")
        capacity = ray.cluster_resources().get("GPU" if gpu else "CPU", 1)
        workers = max(1, min(len(archs), num_workers or int(capacity)))
        actor = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0)(_RayEvaluator)
        pool = ActorPool([actor.remote(str(supernet), data, settings) for _ in range(workers)])
        yield from pool.map_unordered(lambda a, arch: a.evaluate.remote(arch), archs)
    finally:
        if started:
            ray.shutdown()


class _RayEvaluator:
    """Thin Ray actor: one torch thread, all logic in :class:`SubnetEvaluator`."""

    def __init__(self, checkpoint: str, data: DataSpec, settings: EvalSettings) -> None:
        torch.set_num_threads(1)
        self.evaluator = SubnetEvaluator(checkpoint, data, settings)

    def evaluate(self, arch: str) -> tuple[str, float, int]:
        return self.evaluator.evaluate(arch)
