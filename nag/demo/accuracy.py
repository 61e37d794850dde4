"""The demo's accuracy stages: what labels the search, and what scores the generated networks.

- ``dynast`` (:func:`dynast_labels`): the search is labelled by the shipped DyNAS-T rows (real ImageNet
  top-1 of OFA-MobileNetV3 w1.0 subnets) at the farm table's latencies; a generated network's top-1 is
  the estimate of the predictor fitted on those rows (:func:`nag.accuracy.dynast.dynast_source`), whose
  cross-fitted error the stage reports.
- ``supernet`` (:func:`supernet_labels`): a supernet trained on the training images, its sampled subnets
  scored on the *search-validation* split (they label the search), the generated networks on the *test*
  split, which labelled nothing. Both splits are disjoint parts of the held-out images
  (:func:`heldout_split`); batch-norm recalibration uses training images only.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nag.data import ArchTable, atomic_write_bytes
from nag.demo.config import DemoConfig, fingerprint
from nag.errors import SettingError

if TYPE_CHECKING:
    from nag.accuracy import AccuracySource
    from nag.accuracy.supernet.data import Data, DataSpec
    from nag.demo.pipeline import DemoRun

__all__ = ["Labels", "check_supernet_inputs", "dynast_labels", "heldout_split", "split_data", "supernet_labels"]

SPACE = "ofa-mbv3"
CROSS_FIT_FILE = "dynast-fit.json"
CROSS_FIT_FOLDS = 5  # as nag/accuracy/data/dynast-ofa-mbv3-w1.0/FIT.md


@dataclass(frozen=True)
class Labels:
    """The search's labelled architectures, and the source that scores the generated networks."""

    table: ArchTable  # arch, latency (the farm table's prediction), accuracy: the search's data
    open_scorer: Callable[[], AccuracySource]  # opens what scores the generated networks' top-1 (a fit, a model)

    @cached_property
    def scorer(self) -> AccuracySource:
        """The source of the generated networks' top-1, opened on first use (a rerun that reuses its answers never
        opens it: the DyNAS-T predictor's fit alone takes seconds)."""
        return self.open_scorer()

    @property
    def value(self) -> str:
        """Fingerprint of the labelled data: the search reruns when it changes (accuracy as the tables store it)."""
        return fingerprint("labels", self.table.archs, [f"{a:.6f}" for a in self.table.accuracy or ()])


def _labelled_table(archs: list[str], latencies: list[float], accuracy: list[float], source: str) -> ArchTable:
    return ArchTable(
        space=SPACE, archs=tuple(archs), latency_ms=tuple(latencies), accuracy=tuple(accuracy), accuracy_scale="fraction",
        source=source,
    )  # fmt: skip


def _record_sampled(run: DemoRun, table: ArchTable) -> None:
    run.result.sampled = [
        {"arch": a, "latency_ms": ms, "accuracy": acc}
        for a, ms, acc in zip(table.archs, table.latency_ms, table.accuracy or (), strict=True)
    ]


# -- dynast ------------------------------------------------------------------------------------------------------
def dynast_labels(run: DemoRun, predictor: Any) -> Labels:
    """The DyNAS-T rows at the farm table's latencies; the fitted predictor scores the generated networks."""
    from nag.accuracy.dynast import PROVENANCE, TABLE, dynast_table
    from nag.accuracy.registry import open_source

    with run.stage("accuracy (DyNAS-T: real ImageNet top-1 of w1.0 subnets)") as info:
        archs, top1 = dynast_table()
        table = _labelled_table(archs, predictor.predict_ms(archs), top1, f"DyNAS-T rows ({PROVENANCE})")
        fit, info["reused"] = _cross_fit(run.result.out / CROSS_FIT_FILE, archs, top1, data_hash=_file_hash(TABLE))
        _record_sampled(run, table)
        run.result.files["dynast_fit"] = CROSS_FIT_FILE
        run.result.accuracy = {
            "source": "dynast",
            "labels": f"the {len(archs)} DyNAS-T rows: real ImageNet top-1 (IntelLabs/DyNAS-T, w1.0, 224 px)",
            "scored": "the DyNAS-T predictor's estimate (RBF kernel ridge fitted on those rows), not a measurement",
            "cross_fit": fit,
        }
        info["detail"] = (
            f"{len(archs)} rows, top-1 {min(top1):.1%}..{max(top1):.1%}; predictor cross-fitted ({fit['folds']} folds): "
            f"RMSE {fit['rmse_points']:.3f} points, Kendall tau {fit['kendall_tau']:.3f}"
        )
    return Labels(table, lambda: open_source("dynast").source)


def _cross_fit(path: Path, archs: list[str], top1: list[float], *, data_hash: str) -> tuple[dict[str, Any], bool]:
    """The predictor's cross-fitted error on the rows, kept in ``path`` per data; (figures, reused)."""
    from nag.accuracy.fitted import DEFAULT_ALPHA, DEFAULT_GAMMA, FittedAccuracyPredictor

    value = fingerprint("dynast-fit", data_hash, DEFAULT_GAMMA, DEFAULT_ALPHA, CROSS_FIT_FOLDS)
    try:
        kept = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        kept = {}  # recomputing is always safe
    if kept.get("fingerprint") == value:
        return kept["report"], True
    report = asdict(FittedAccuracyPredictor.cross_validate(archs, top1, folds=CROSS_FIT_FOLDS, seed=0))
    atomic_write_bytes(path, (json.dumps({"fingerprint": value, "report": report}, indent=2) + "\n").encode())
    return report, False


# -- supernet ----------------------------------------------------------------------------------------------------
def data_spec(config: DemoConfig) -> DataSpec:
    """The images of the supernet path; digits hold out ``heldout_fraction`` of theirs (search-validation + test)."""
    from nag.accuracy.supernet.data import DataSpec

    return DataSpec(
        source=config.data, resolution=config.accuracy_resolution, val_fraction=config.heldout_fraction, seed=config.seed
    )


def check_supernet_inputs(config: DemoConfig) -> Data:
    """The data loads, and a given checkpoint loads and fits it (width, classes); typed errors otherwise."""
    from nag.accuracy.supernet.data import load_data

    data = load_data(data_spec(config))
    if config.checkpoint is None:
        return data
    from nag.accuracy.supernet.network import load_supernet

    supernet = load_supernet(config.checkpoint)
    if supernet.width != config.network_width:
        raise SettingError(
            f"the checkpoint {config.checkpoint!r} is a width-{supernet.width:g} supernet; run with --width {supernet.width:g}"
        )
    if supernet.num_classes != data.num_classes:
        raise SettingError(
            f"the checkpoint {config.checkpoint!r} classifies {supernet.num_classes} classes but {config.data!r} has "
            f"{data.num_classes}; give the data it was trained on, or leave out --checkpoint to train one on this data"
        )
    return data


def heldout_split(n: int, *, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(search-validation, test) indices of ``n`` held-out images: a seeded shuffle cut at ``test_fraction``.

    Deterministic for a seed, disjoint, together exactly ``range(n)``, each sorted; a split that would leave
    either side empty raises :class:`SettingError`.
    """
    n_test = round(n * test_fraction)
    if not 0 < n_test < n:
        raise SettingError(
            f"{n} held-out images cannot be split into search-validation and test at test_fraction {test_fraction}; "
            "give more validation images"
        )
    order = random.Random(seed).sample(range(n), n)
    return sorted(order[n_test:]), sorted(order[:n_test])


def split_data(data: Data, *, test_fraction: float, seed: int) -> tuple[Data, Data]:
    """(search-validation, test) views of ``data``: the same training images, disjoint halves of its held-out ones."""
    from torch.utils.data import Subset

    search, test = heldout_split(len(data.val), test_fraction=test_fraction, seed=seed)  # type: ignore[arg-type]
    return replace(data, val=Subset(data.val, search)), replace(data, val=Subset(data.val, test))


def supernet_labels(run: DemoRun, predictor: Any, data: Data) -> Labels:
    """Supernet (given, reused or trained), its subnets on search-validation; a scorer on the test split."""
    from nag.accuracy.supernet.evaluation import EvalSettings
    from nag.accuracy.supernet.source import SupernetAccuracy

    c = run.c
    search_data, test_data = split_data(data, test_fraction=c.test_fraction, seed=c.seed)
    checkpoint, supernet_hash = _supernet(run, data)
    settings = EvalSettings(calib_images=c.calib_images, batch_size=500, seed=c.seed)
    split = (repr(settings), repr(data.spec), c.test_fraction)
    subnets = run.result.out / f"subnets-{fingerprint('subnets', supernet_hash, *split)}.csv"
    tested = run.result.out / f"test-{fingerprint('test', supernet_hash, *split)}.csv"
    labeller = SupernetAccuracy(checkpoint, search_data, settings=settings, cache=subnets, progress=run.progress)
    table = _subnets(run, labeller, predictor)
    run.result.files.update(subnets=subnets.name, test=tested.name)
    sizes = {"train": len(data.train), "search_validation": len(search_data.val), "test": len(test_data.val)}  # type: ignore[arg-type]
    run.result.accuracy = {
        "source": "supernet",
        "labels": f"top-1 on the search-validation split ({sizes['search_validation']} of the {c.data_label})",
        "scored": f"top-1 on the test split ({sizes['test']} of the {c.data_label}), which labelled nothing",
        "splits": sizes,
    }
    return Labels(table, lambda: SupernetAccuracy(checkpoint, test_data, settings=settings, cache=tested, progress=run.progress))


def _supernet(run: DemoRun, data: Data) -> tuple[Path, str]:
    """The checkpoint the subnets come from (given, reused or trained now), and its content hash."""
    from nag.accuracy.supernet.network import save_supernet
    from nag.accuracy.supernet.train import DEFAULT_PHASES, TrainConfig

    c = run.c
    with run.stage("supernet (progressive shrinking)") as info:
        if c.checkpoint is not None:  # checked against the data by check_supernet_inputs
            checkpoint = Path(c.checkpoint)
            info.update(reused=True, detail=f"given: {checkpoint}")
            return checkpoint, _file_hash(checkpoint)
        phases = tuple(replace(p, epochs=e) for p, e in zip(DEFAULT_PHASES, c.phase_epochs, strict=True))
        train = TrainConfig(
            phases=phases, width=c.network_width, batch_size=c.batch_size, lr=c.lr,
            max_steps_per_epoch=c.max_steps_per_epoch, seed=c.seed,
        )  # fmt: skip
        value = fingerprint("supernet", repr(train), repr(data.spec))
        checkpoint = run.result.out / "supernet.pt"
        if run.state.matches("supernet", value) and checkpoint.exists():
            info.update(reused=True, detail=f"{checkpoint.name} from an earlier run")
            return checkpoint, _file_hash(checkpoint)
        from nag.accuracy.supernet.train import train_supernet

        lines: list[str] = []
        supernet = train_supernet(data, train, progress=run.progress, log=lines.append)
        save_supernet(supernet.cpu(), checkpoint, extra={"data": data.spec.source, "resolution": data.spec.resolution})
        run.state.set("supernet", value)
        info["detail"] = f"{len(data.train)} training images at {data.spec.resolution} px; " + "; ".join(lines)  # type: ignore[arg-type]
    return checkpoint, _file_hash(checkpoint)


def _subnets(run: DemoRun, source: Any, predictor: Any) -> ArchTable:
    """Top-1 of the search's sampled subnets on the search-validation split, kept in ``source``'s table."""
    from nag.space import get_space

    c = run.c
    space = get_space(SPACE)
    archs = [space.format(a) for a in space.sample_many(c.subnets, seed=c.search.seed)]  # the search's own sample
    with run.stage(f"subnet accuracies ({c.subnets} sampled subnets, search-validation split)") as info:
        already = source.known(archs)
        accuracies = source.accuracy(archs)
        table = _labelled_table(archs, predictor.predict_ms(archs), accuracies, f"{c.subnets} sampled subnets")
        _record_sampled(run, table)
        info["reused"] = already == len(archs)
        info["detail"] = (
            f"top-1 {min(accuracies):.1%}..{max(accuracies):.1%} (mean {sum(accuracies) / len(accuracies):.1%}), "
            f"{len(archs) - already} evaluated now, into {Path(source.cache_path).name}"
        )
    return table


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
