"""The run directory: everything ``nag generate`` needs, written durably, loaded without the data.

Layout (``RUN_DIR/``)::

    config.json       the SearchConfig (JSON), the space name
    budgets.json      the K trained budgets (ms) and the outside-range policy
    evaluator.pt      evaluator weights (torch state dict, with its budget embeddings)
    generator.pt      generator weights (with its budget embeddings)
    surrogate.pt      accuracy-surrogate weights
    latency.json      the latency predictor's parameters ({"kind": ..., ...})
    metrics.json      data summary, fit reports, per-trial evaluator and generator metrics, timings
    manifest.json     written last: format, version, file list; a directory without it is incomplete

Every file is written to a temporary name in the directory and moved into place with ``os.replace``, so a
crash leaves either the old file or the new one. Latency predictors are stored through ``to_dict()`` and
restored by their ``kind``, a short name registered in :data:`LATENCY_KINDS` (a class with a ``from_dict``
classmethod): this is the seam through which a farm predictor joins a run directory. Older directories
that stored a module path for the farm's predictor still load; any other name is refused, never imported.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from nag.data import atomic_write_bytes
from nag.errors import NagError, SettingError, show_value
from nag.latency import LatencyPredictor
from nag.registry import load_target
from nag.search.budgets import BudgetSet
from nag.search.config import SearchConfig
from nag.search.layout import StagedLayout
from nag.search.model import SearchModel, new_evaluator, new_generator, new_surrogate
from nag.space import get_space

__all__ = ["LATENCY_KINDS", "RunDirError", "check_storable", "load_run", "save_run", "write_json"]

FORMAT = "nag-search-run"
VERSION = 1
FILES = ("config.json", "budgets.json", "evaluator.pt", "generator.pt", "surrogate.pt", "latency.json", "metrics.json")

# kind -> "module:Class" with a from_dict classmethod; imported only when a run directory uses it. A run
# directory names a kind, never code: a kind that is not registered here is refused, not imported.
LATENCY_KINDS: dict[str, str] = {
    "additive": "nag.latency.additive:AdditiveLatencyPredictor",
    "lut": "farm.lut:LutPredictor",
    "known-answer": "nag.search.known_answer:KnownAnswerProblem",
}
_LEGACY_KINDS = {"farm.lut:LutPredictor": "lut"}  # module paths stored by run directories before 2026-12


class RunDirError(NagError, ValueError):
    """A run directory is missing, incomplete, or holds files this version cannot read."""


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, durably (temporary file, then ``os.replace``)."""
    atomic_write_bytes(path, (json.dumps(value, indent=2, allow_nan=True) + "\n").encode())


def _write_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def check_storable(latency: LatencyPredictor) -> dict[str, Any]:
    """The predictor's ``to_dict()``; raises :class:`SettingError` if it cannot be stored in a run directory."""
    to_dict = getattr(latency, "to_dict", None)
    if not callable(to_dict):
        raise SettingError(
            f"latency predictor {type(latency).__name__} cannot be stored in a run directory: it needs to_dict() and "
            "a from_dict() classmethod, and its kind registered in nag.search.rundir.LATENCY_KINDS"
        )
    value = to_dict()
    if not isinstance(value, dict) or "kind" not in value:
        raise SettingError(f"latency predictor {type(latency).__name__}.to_dict() must return a dict with a 'kind'")
    return value


def save_run(out: str | os.PathLike[str], model: SearchModel, metrics: dict[str, Any]) -> Path:
    """Write ``model`` and ``metrics`` to ``out`` (created if needed); returns the directory."""
    if model.evaluator is None:
        raise SettingError("a run directory stores PNAG models; this model has no evaluator (a baseline's generator)")
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    (run / "manifest.json").unlink(missing_ok=True)  # incomplete until rewritten
    write_json(run / "config.json", {"space": model.space.name, "config": model.config.to_dict()})
    write_json(run / "budgets.json", model.budgets.to_dict())
    _write_state(run / "evaluator.pt", model.evaluator.state_dict())
    _write_state(run / "generator.pt", model.generator.state_dict())
    _write_state(run / "surrogate.pt", model.surrogate.state_dict())
    write_json(run / "latency.json", check_storable(model.latency))
    write_json(run / "metrics.json", metrics)
    write_json(run / "manifest.json", {"format": FORMAT, "version": VERSION, "files": list(FILES), "written": time.time()})
    return run


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunDirError(f"cannot read {path}: {exc}; the run directory is damaged, run 'nag search' again") from None


def _load_latency(value: Any) -> LatencyPredictor:
    kind = value.get("kind") if isinstance(value, dict) else None
    name = _LEGACY_KINDS.get(str(kind), str(kind))
    if name not in LATENCY_KINDS:
        raise RunDirError(
            f"latency.json names latency predictor kind {kind!r}; this version loads {', '.join(sorted(LATENCY_KINDS))} "
            "(a run directory names a registered kind, never code to import): run 'nag search' again"
        )
    cls = load_target(LATENCY_KINDS[name], what="latency predictor")
    try:
        predictor: LatencyPredictor = cls.from_dict(value)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise RunDirError(
            f"latency.json holds a damaged {name} predictor ({type(exc).__name__}: {exc}); run 'nag search' again"
        ) from None
    return predictor


def _load_state(module: torch.nn.Module, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except Exception as exc:  # a damaged archive makes torch.load raise almost anything: name the file
        raise RunDirError(
            f"cannot load {path}: {exc}; the run directory does not match this version, run 'nag search' again"
        ) from None
    module.eval()


def load_run(run_dir: str | os.PathLike[str]) -> tuple[SearchModel, dict[str, Any]]:
    """The :class:`SearchModel` and metrics stored in ``run_dir``; raises :class:`RunDirError`."""
    run = Path(run_dir)
    manifest_path = run / "manifest.json"
    if not manifest_path.is_file():
        what = "does not exist" if not run.exists() else "is not a complete run directory (no manifest.json)"
        raise RunDirError(f"{str(run)!r} {what}; create one with 'nag search ... --out {run}'")
    manifest = _read_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise RunDirError(
            f"{run}: format {show_value(manifest.get('format') if isinstance(manifest, dict) else manifest)} version "
            f"{show_value(manifest.get('version') if isinstance(manifest, dict) else None)}; this nag reads {FORMAT} v{VERSION}"
        )
    with _reading(run / "config.json"):
        stored = _read_json(run / "config.json")
        config = SearchConfig.from_dict(stored["config"])
        space = get_space(stored["space"])
        layout = StagedLayout.for_space(space)
        evaluator, generator = new_evaluator(layout, config, seed=0), new_generator(layout, config, seed=0)
        surrogate = new_surrogate(layout, config, seed=0)
    with _reading(run / "budgets.json"):
        budgets = BudgetSet.from_dict(_read_json(run / "budgets.json"))
    for module, name in ((evaluator, "evaluator.pt"), (generator, "generator.pt"), (surrogate, "surrogate.pt")):
        _load_state(module, run / name)
    latency = _load_latency(_read_json(run / "latency.json"))
    model = SearchModel(space, layout, budgets, evaluator, generator, surrogate, latency, config)
    metrics = _read_json(run / "metrics.json")
    if not isinstance(metrics, dict):
        raise RunDirError(f"{run / 'metrics.json'} holds {show_value(metrics)}, not an object; run 'nag search' again")
    return model, metrics


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn what a damaged file makes the readers raise (a missing key, a wrong type, a bad value) into one
    :class:`RunDirError` naming the file; the readers' own typed errors pass unchanged."""
    try:
        yield
    except NagError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RuntimeError) as exc:
        raise RunDirError(
            f"{path} is damaged ({type(exc).__name__}: {show_value(str(exc), 200)}); run 'nag search' again"
        ) from None
