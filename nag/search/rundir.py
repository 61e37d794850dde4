"""The run directory: everything ``nag generate`` needs, written durably, loaded without the data.

Layout (``RUN_DIR/``)::

    config.json       the SearchConfig (JSON), the space name
    budgets.json      the K trained budgets (ms) and the outside-range policy
    evaluator.pt      evaluator weights (torch state dict, with its budget embeddings)
    generator.pt      generator weights (with its budget embeddings)
    surrogate.pt      accuracy-surrogate weights
    inference.npz     the same three networks' weights as numpy arrays, and the latency predictor's additive
                      form: what ``nag generate`` reads, without torch (:mod:`nag.search.numpy_model`)
    latency.json      the latency predictor's parameters ({"kind": ..., ...})
    metrics.json      data summary, fit reports, per-trial evaluator and generator metrics, timings
    manifest.json     written last: format, version, file list; a directory without it is incomplete
    accuracy.json     optional (a search with --accuracy): how to reopen its accuracy source (spec, settings)
    accuracy.npz      optional: a fitted source's fit, and the fingerprint of what it was fitted from
                      (:func:`write_accuracy_fit`, :func:`read_accuracy_fit`)

Every file is written to a temporary name in the directory and moved into place with ``os.replace``, so a
crash leaves either the old file or the new one. Latency predictors are stored through ``to_dict()`` and
restored by their ``kind``, a short name registered in :data:`LATENCY_KINDS` (a class with a ``from_dict``
classmethod): this is the seam through which a farm predictor joins a run directory. Older directories
that stored a module path for the farm's predictor still load; any other name is refused, never imported.

Two loaders: :func:`load_run` gives the torch networks (:class:`~nag.search.model.SearchModel`, for training
code and your own use); :func:`load_inference` gives what inference runs on
(:class:`~nag.search.numpy_model.InferenceModel`) from ``inference.npz``, importing neither torch nor Ray.
Directories written before ``inference.npz`` existed (their manifest does not list it) still load through
torch, and :func:`upgrade_run` (``nag upgrade-run``) adds the file to them. Every damaged file makes either
loader raise :class:`RunDirError` naming it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nag import stored
from nag.data import atomic_write_bytes
from nag.errors import MissingDependencyError, NagError, SettingError, show_value
from nag.latency import LatencyPredictor, StorableLatencyPredictor
from nag.registry import load_target
from nag.search.budgets import BudgetSet
from nag.search.config import SearchConfig
from nag.search.layout import StagedLayout
from nag.search.metrics import MetricsError, RunMetrics
from nag.space import SearchSpace, get_space

if TYPE_CHECKING:
    import torch

    from nag.accuracy import AccuracySource
    from nag.accuracy.fitted import FittedAccuracyPredictor
    from nag.search.model import SearchModel
    from nag.search.numpy_model import InferenceModel

__all__ = [
    "ACCURACY_FILE",
    "ACCURACY_FIT_FILE",
    "INFERENCE_FILE",
    "LATENCY_KINDS",
    "RunDirError",
    "StoredFit",
    "check_storable",
    "load_inference",
    "load_latency",
    "load_run",
    "read_accuracy_fit",
    "read_accuracy_spec",
    "read_arrays",
    "read_metrics",
    "save_run",
    "upgrade_run",
    "write_accuracy_fit",
    "write_accuracy_spec",
    "write_json",
]

FORMAT = "nag-search-run"
VERSION = 1  # inference.npz was added without a new version: older nag ignores it, and this one reads directories without it
INFERENCE_FILE = "inference.npz"
FILES = (
    "config.json",
    "budgets.json",
    "evaluator.pt",
    "generator.pt",
    "surrogate.pt",
    INFERENCE_FILE,
    "latency.json",
    "metrics.json",
)
ACCURACY_FILE = "accuracy.json"  # optional: how to reopen the run's accuracy source (its registry spec and settings)
ACCURACY_FIT_FILE = "accuracy.npz"  # optional: a fitted source's fit, with the fingerprint of what it was fitted from
_FINGERPRINT, _FIT = "fingerprint", "fit."  # accuracy.npz's entries: the fingerprint () str, the fit's arrays as fit.NAME
# What numpy and zipfile raise for a damaged .npz (each seen on truncated or garbled copies of inference.npz): not
# a zip or a bad checksum (BadZipFile), a bad deflate stream (zlib.error), a garbled version or compression field
# (NotImplementedError), the encryption flag set (RuntimeError), a damaged array header or data (ValueError,
# EOFError), a file that cannot be read (OSError).
_DAMAGED_NPZ = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)
_FORM_CHECKS = 8  # sampled architectures on which a stored additive latency form is compared with latency.json's predictor

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
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _write_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type] # not compressed: a few hundred kB, read in a millisecond
    atomic_write_bytes(path, buffer.getvalue())


def check_storable(latency: LatencyPredictor) -> dict[str, Any]:
    """The predictor's ``to_dict()``; raises :class:`SettingError` if it cannot be stored in a run directory."""
    if not isinstance(latency, StorableLatencyPredictor):
        raise SettingError(
            f"latency predictor {type(latency).__name__} cannot be stored in a run directory: it needs to_dict() and "
            "a from_dict() classmethod, and its kind registered in nag.search.rundir.LATENCY_KINDS"
        )
    value = latency.to_dict()
    if not isinstance(value, dict) or "kind" not in value:
        raise SettingError(f"latency predictor {type(latency).__name__}.to_dict() must return a dict with a 'kind'")
    return value


def save_run(out: str | os.PathLike[str], model: SearchModel, metrics: RunMetrics) -> Path:
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
    _write_arrays(run / INFERENCE_FILE, model.inference_arrays())
    write_json(run / "latency.json", check_storable(model.latency))
    write_json(run / "metrics.json", metrics.to_dict())
    _write_manifest(run, FILES)
    return run


def _write_manifest(run: Path, files: tuple[str, ...]) -> None:
    write_json(run / "manifest.json", {"format": FORMAT, "version": VERSION, "files": list(files), "written": time.time()})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunDirError(f"cannot read {path}: {exc}; the run directory is damaged, run 'nag search' again") from None


def load_latency(value: Any) -> LatencyPredictor:
    """The predictor a run directory's ``latency.json`` holds (``value``, its parsed JSON), by its registered ``kind``;
    raises :class:`RunDirError` for an unknown kind (never importing it) or damaged parameters."""
    kind = value.get("kind") if isinstance(value, dict) else None
    name = _LEGACY_KINDS.get(str(kind), str(kind))
    if name not in LATENCY_KINDS:
        raise RunDirError(
            f"latency.json names latency predictor kind {kind!r}; this version loads {', '.join(sorted(LATENCY_KINDS))} "
            "(a run directory names a registered kind, never code to import): run 'nag search' again"
        )
    cls = load_target(LATENCY_KINDS[name], what="latency predictor")
    try:
        predictor: LatencyPredictor = cls.from_dict(value)  # damaged parameters raise ValueError naming the entry
    except ValueError as exc:
        raise RunDirError(
            f"latency.json holds a damaged {name} predictor ({type(exc).__name__}: {exc}); run 'nag search' again"
        ) from None
    return predictor


def _load_state(module: torch.nn.Module, path: Path) -> None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except Exception as exc:  # a damaged archive makes torch.load raise almost anything: name the file
        raise RunDirError(
            f"cannot load {path}: {exc}; the run directory does not match this version, run 'nag search' again"
        ) from None
    module.eval()


@dataclass(frozen=True, eq=False)
class _Common:
    """What both loaders read: the manifest's file list, the settings, the budgets and the latency predictor."""

    files: tuple[str, ...]  # the manifest's file list
    space: SearchSpace[Any]
    layout: StagedLayout
    config: SearchConfig
    budgets: BudgetSet
    latency: LatencyPredictor


def _read_common(run: Path) -> _Common:
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
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise RunDirError(f"{manifest_path} lists its files as {show_value(files)}, not a list of names; run 'nag search' again")
    with _reading(run / "config.json"):
        settings = _read_json(run / "config.json")
        config = SearchConfig.from_dict(stored.entry(settings, "config", "config.json"))
        space = get_space(stored.text(stored.entry(settings, "space", "config.json"), "space"))
        layout = StagedLayout.for_space(space)
    with _reading(run / "budgets.json"):
        budgets = BudgetSet.from_dict(_read_json(run / "budgets.json"))
        if budgets.k != config.num_budgets:
            raise ValueError(f"{budgets.k} budgets, but config.json trained {config.num_budgets}")
    latency = load_latency(_read_json(run / "latency.json"))
    return _Common(tuple(files), space, layout, config, budgets, latency)


def read_metrics(run_dir: str | os.PathLike[str]) -> RunMetrics:
    """The :class:`RunMetrics` stored in ``run_dir`` (``metrics.json``), without loading the networks; raises
    :class:`RunDirError` naming the file and the field when it is damaged."""
    run = Path(run_dir)
    try:
        return RunMetrics.from_dict(_read_json(run / "metrics.json"))
    except MetricsError as exc:
        raise RunDirError(f"{run / 'metrics.json'} is damaged: {exc}; run 'nag search' again") from None


def load_run(run_dir: str | os.PathLike[str]) -> tuple[SearchModel, RunMetrics]:
    """The :class:`SearchModel` (torch networks) and metrics stored in ``run_dir``; raises :class:`RunDirError`."""
    run = Path(run_dir)
    return _torch_model(run, _read_common(run)), read_metrics(run)


def _torch_model(run: Path, common: _Common) -> SearchModel:
    """The torch networks of ``run``, whose settings ``common`` has read."""
    from nag.search.model import SearchModel, new_evaluator, new_generator, new_surrogate

    evaluator = new_evaluator(common.layout, common.config, seed=0)
    generator = new_generator(common.layout, common.config, seed=0)
    surrogate = new_surrogate(common.layout, common.config, seed=0)
    for module, name in ((evaluator, "evaluator.pt"), (generator, "generator.pt"), (surrogate, "surrogate.pt")):
        _load_state(module, run / name)
    return SearchModel(
        common.space, common.layout, common.budgets, evaluator, generator, surrogate, common.latency, common.config
    )


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``; raises :class:`RunDirError` naming it if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except _DAMAGED_NPZ as exc:
        raise RunDirError(
            f"cannot read {path}: {type(exc).__name__}: {show_value(str(exc), 200)}; the run directory is damaged, "
            "run 'nag search' again"
        ) from None


def load_inference(run_dir: str | os.PathLike[str], *, log: Callable[[str], None] | None = None) -> InferenceModel:
    """The :class:`InferenceModel` stored in ``run_dir``, from ``inference.npz`` without importing torch; a
    directory written before that file existed loads through torch, and ``log`` is told so first (with the fix).
    Reads what inference needs and nothing else (not ``metrics.json``). Raises :class:`RunDirError`."""
    from nag.search.numpy_model import InferenceModel

    run = Path(run_dir)
    common = _read_common(run)
    if INFERENCE_FILE not in common.files:
        if log is not None:
            log(
                f"{os.fspath(run_dir)} was written before {INFERENCE_FILE} existed, so it loads through torch (about a "
                f"second slower); 'nag upgrade-run {os.fspath(run_dir)}' adds it"
            )
        try:
            import torch  # noqa: F401 - only to say what is missing
        except ImportError:
            raise MissingDependencyError(
                f"{run} was written before {INFERENCE_FILE} existed and loads only through torch, which is not installed: "
                f"install torch, or run 'nag upgrade-run {run}' where it is"
            ) from None
        return _torch_model(run, common).inference
    path = run / INFERENCE_FILE
    arrays = read_arrays(path)
    try:
        model = InferenceModel.from_arrays(
            arrays, space=common.space, layout=common.layout, budgets=common.budgets, config=common.config, latency=common.latency
        )
    except ValueError as exc:  # what from_arrays raises for content it cannot use, naming the entry
        raise RunDirError(f"{path} is damaged ({show_value(str(exc), 300)}); run 'nag search' again") from None
    _check_form(model, path)
    return model


def _check_form(model: InferenceModel, path: Path) -> None:
    """The stored additive latency form must price sampled architectures as latency.json's predictor does."""
    if model.latency_form is None:
        return
    space, layout = model.space, model.layout
    actions = layout.archs_to_actions([space.sample(random.Random(seed)) for seed in range(_FORM_CHECKS)])
    try:
        expected = np.asarray(model.latency.predict_ms(layout.actions_to_archs(space, actions)), dtype=np.float64)
    except NagError as exc:
        raise RunDirError(f"{path.parent / 'latency.json'}'s predictor cannot price sampled architectures: {exc}") from None
    found = model.latency_form(actions)
    if not np.allclose(found, expected, rtol=1e-9, atol=1e-9):
        raise RunDirError(
            f"{path}'s latency form and {path.parent / 'latency.json'}'s predictor disagree (e.g. {found[0]!r} against "
            f"{expected[0]!r} ms): one of them is damaged; run 'nag search' again"
        )


def write_accuracy_spec(run_dir: str | os.PathLike[str], spec: str, settings: Mapping[str, Any]) -> None:
    """Keep how to reopen the run's accuracy source (``accuracy.json``): its registry ``spec`` and the settings
    opening it needs (JSON scalars: strings, numbers or null, by name)."""
    write_json(Path(run_dir) / ACCURACY_FILE, {"spec": spec, **settings})


def read_accuracy_spec(run_dir: str | os.PathLike[str]) -> tuple[str, dict[str, Any]] | None:
    """``(spec, settings)`` of ``run_dir``'s ``accuracy.json`` (None when the run has none); raises
    :class:`RunDirError` naming the file and the entry when it is damaged."""
    path = Path(run_dir) / ACCURACY_FILE
    if not path.is_file():
        return None
    value = _read_json(path)
    try:
        spec = stored.text(stored.entry(value, "spec", ACCURACY_FILE), f"{ACCURACY_FILE}: spec")
        settings = {name: v for name, v in stored.mapping(value, ACCURACY_FILE).items() if name != "spec"}
        for name, v in settings.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
                raise stored.StoredValueError(f"{ACCURACY_FILE}: {name} is {show_value(v)}, not a string, number or null")
    except ValueError as exc:
        raise RunDirError(f"{path} is damaged: {exc}; pass --accuracy SPEC, or --select-by surrogate") from None
    return spec, settings


def write_accuracy_fit(run_dir: str | os.PathLike[str], source: AccuracySource, fingerprint: str | None) -> bool:
    """Keep ``source``'s fit in ``run_dir`` (``accuracy.npz``) with ``fingerprint``, the
    :func:`nag.accuracy.registry.fit_fingerprint` of what it was fitted from, taken before it was fitted: a table
    changed meanwhile then fails the check and is fitted again, never the reverse. A source that cannot keep its
    fit (:class:`nag.accuracy.StorableFitSource`), or no fingerprint, removes a stale file instead. Returns whether
    a fit was written."""
    from nag.accuracy import StorableFitSource

    path = Path(run_dir) / ACCURACY_FIT_FILE
    if fingerprint is None or not isinstance(source, StorableFitSource):
        path.unlink(missing_ok=True)
        return False
    fit = {f"{_FIT}{name}": value for name, value in source.to_arrays().items()}
    _write_arrays(path, {_FINGERPRINT: np.asarray(fingerprint), **fit})
    return True


@dataclass(frozen=True, eq=False)
class StoredFit:
    """A run's ``accuracy.npz`` as read: compare :attr:`fingerprint` with the source's before using the fit."""

    path: Path  # the file
    fingerprint: str  # the fit_fingerprint of what the fit was fitted from
    arrays: dict[str, np.ndarray]  # the fit, as FittedAccuracyPredictor.to_arrays wrote it

    def predictor(self) -> FittedAccuracyPredictor:
        """The fit, rebuilt without fitting; raises :class:`RunDirError` naming the file when it is damaged or
        holds a fit with other settings than the ones its fingerprint was taken with (the defaults)."""
        from nag.accuracy.fitted import DEFAULT_ALPHA, DEFAULT_GAMMA, FittedAccuracyPredictor, FittedModelError

        try:
            fitted = FittedAccuracyPredictor.from_arrays(self.arrays)
        except (FittedModelError, SettingError) as exc:
            raise RunDirError(f"{self.path} is damaged ({exc}); run 'nag search' again") from None
        if (fitted.gamma, fitted.alpha) != (DEFAULT_GAMMA, DEFAULT_ALPHA):
            raise RunDirError(
                f"{self.path} holds a fit with gamma {fitted.gamma!r}, alpha {fitted.alpha!r}, not the fit's {DEFAULT_GAMMA}, "
                f"{DEFAULT_ALPHA}: it is damaged; run 'nag search' again"
            )
        return fitted


def read_accuracy_fit(run_dir: str | os.PathLike[str]) -> StoredFit | None:
    """``run_dir``'s ``accuracy.npz`` (None when it has none); raises :class:`RunDirError` naming the file when it
    cannot be read or has no fingerprint. The fit itself is checked when it is used (:meth:`StoredFit.predictor`)."""
    path = Path(run_dir) / ACCURACY_FIT_FILE
    if not path.is_file():
        return None
    arrays = read_arrays(path)
    found = arrays.pop(_FINGERPRINT, None)
    if found is None or found.shape != () or found.dtype.kind != "U":
        raise RunDirError(f"{path} has no fingerprint; the run directory is damaged, run 'nag search' again")
    return StoredFit(path, str(found), {name.removeprefix(_FIT): value for name, value in arrays.items()})


def upgrade_run(run_dir: str | os.PathLike[str]) -> bool:
    """Add ``inference.npz`` to a run directory written before it existed, or write it again when an older format
    (format 1: no calibration map, so a calibrated block table priced candidates the slow way); needs torch.
    False when the file is already of this version's format."""
    from nag.search.numpy_model import INFERENCE_FORMAT

    run = Path(run_dir)
    common = _read_common(run)
    if INFERENCE_FILE in common.files:
        found = read_arrays(run / INFERENCE_FILE).get("format")
        if found is not None and found.shape == () and found.dtype.kind in "iu" and int(found) >= INFERENCE_FORMAT:
            return False
    model = _torch_model(run, common)
    _write_arrays(run / INFERENCE_FILE, model.inference_arrays())
    _write_manifest(run, FILES)
    load_inference(run)  # what was written reads back
    return True


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn the ValueError that a reader raises for damaged content (a missing entry, a wrong type: :mod:`nag.stored`;
    a value out of range: :class:`SettingError`) into one :class:`RunDirError` naming the file. Anything else
    passes unchanged: a typed error that is not about the content (an unknown space name lists the known ones),
    or a mistake in the reader, which is not damage."""
    try:
        yield
    except RunDirError:
        raise
    except ValueError as exc:
        raise RunDirError(
            f"{path} is damaged ({type(exc).__name__}: {show_value(str(exc), 200)}); run 'nag search' again"
        ) from None
