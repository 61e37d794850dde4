"""What ``nag demo`` runs: one frozen :class:`DemoConfig`, with the default sized for a 2-core laptop.

Two accuracy landscapes (``accuracy``):

- ``"dynast"`` (the default): real ImageNet top-1 of OFA-MobileNetV3 w1.0 subnets, the DyNAS-T rows shipped
  in :mod:`nag.accuracy.dynast`, with a predictor fitted on them scoring the generated networks. The
  latency table is then measured at width 1.0, the width of those rows.
- ``"supernet"``: a supernet trained on the embedded digits (or ``data``), its subnets evaluated; width 1.2
  by default. The images are split three ways: train (the supernet, batch-norm recalibration),
  search-validation (labels the search) and test (scores the generated networks).

Every stage's settings are here, so that a stage's *fingerprint* (a hash of its settings and of the
fingerprints of the stages it reads) says whether a previous run's output can be reused: the latency
tables are reused entry by entry by the store whatever happens, the supernet when its training settings
are unchanged, the subnet accuracies when the supernet is, the search when its data and settings are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nag.errors import SettingError
from nag.search.config import EvaluatorConfig, GeneratorConfig, SearchConfig, SurrogateConfig

__all__ = ["ACCURACIES", "QUICK", "DemoConfig", "fingerprint"]

KINDS = ("ort-cpu", "litert-cpu")
ACCURACIES = ("dynast", "supernet")
SUPERNET_WIDTH = 1.2  # the supernet path's default width (the paper's)


def _demo_search() -> SearchConfig:
    # Sized for a few hundred labelled architectures (the paper: 16,000) on 2 cores: about a minute.
    return SearchConfig(
        evaluator=EvaluatorConfig(steps=800),
        generator=GeneratorConfig(iterations=250),
        surrogate=SurrogateConfig(steps=600, batch_size=128),
    )


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the embedded-default pipeline (see :func:`nag.demo.run_demo`)."""

    # Latency: the local farm measures every block of ofa-mbv3 at this setting, then whole networks.
    kind: str = "ort-cpu"  # local agent kind that measures: "ort-cpu" (ONNX Runtime) or "litert-cpu" (LiteRT)
    width: float | None = None  # width multiplier of the space; None: the accuracy's own (dynast 1.0, supernet 1.2)
    resolution: int = 224  # input pixels of the measured networks (the paper's); at 32 px a CPU's latencies are noise
    runs: int = 15  # timed samples per measurement
    warmup: int = 5  # warm-up inferences per measurement
    validate_networks: int = 12  # random whole networks measured to calibrate and validate the block table
    # Accuracy: "dynast" (real ImageNet top-1, w1.0) or "supernet" (the settings below).
    accuracy: str = "dynast"  # one of ACCURACIES
    # The supernet path: a supernet trained by progressive shrinking on the embedded digits, subnets evaluated.
    data: str = "digits"  # "digits" (embedded, the proxy) or an ImageNet-layout folder DIR/{train,val}/<class>/
    data_resolution: int | None = None  # pixels of the accuracy data; None: 32 for digits, else ``resolution``
    checkpoint: str | None = None  # a trained supernet (OFA's published file, 'nag supernet train'); None: train one
    phase_epochs: tuple[float, float, float, float] = (3.0, 1.0, 1.0, 1.0)  # largest, kernel, depth, expand
    batch_size: int = 64
    lr: float = 0.05
    max_steps_per_epoch: int | None = None  # cap per epoch (quick runs); None: the whole training set
    subnets: int = 150  # uniformly sampled subnets evaluated: the labelled architectures of the search
    calib_images: int = 200  # training images that re-estimate a subnet's batch-norm statistics
    heldout_fraction: float = 0.4  # digits only: share of the images not trained on (search-validation + test)
    test_fraction: float = 0.5  # share of the held-out images kept as the test split (the rest: search-validation)
    # Search and generation.
    search: SearchConfig = field(default_factory=_demo_search)
    budgets: int = 5  # budgets asked of the trained generator, spread over the sampled latencies
    histogram_samples: int = 1000  # generator samples per budget in the Fig.-3-style histogram (the paper: 1,000)
    seed: int = 0  # sampling of subnets and networks, supernet initialisation, the search

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SettingError(
                f"the demo measures on a local CPU agent; kind must be one of {', '.join(KINDS)}, got {self.kind!r}"
            )
        if self.accuracy not in ACCURACIES:
            raise SettingError(f"accuracy must be one of {', '.join(ACCURACIES)}, got {self.accuracy!r}")
        for name in ("runs", "validate_networks", "subnets", "calib_images", "budgets", "histogram_samples", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingError(f"demo setting {name} must be a positive integer, got {value!r}")
        if self.validate_networks < 4:
            raise SettingError(
                f"validate_networks must be at least 4 (calibration is cross-fitted), got {self.validate_networks}"
            )
        if self.subnets < 20:
            raise SettingError(f"subnets must be at least 20 (the search holds out a fifth), got {self.subnets}")
        for name in ("heldout_fraction", "test_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise SettingError(f"{name} must be in (0, 1), got {getattr(self, name)!r}; e.g. 0.5")
        if len(self.phase_epochs) != 4 or any(e < 0 for e in self.phase_epochs):
            raise SettingError(
                f"phase_epochs needs 4 non-negative values (largest, kernel, depth, expand), got {self.phase_epochs}"
            )
        if self.accuracy == "dynast":
            self._check_dynast()

    def _check_dynast(self) -> None:
        """The DyNAS-T rows fix the width and resolution, and need no supernet or images."""
        from nag.accuracy.dynast import RESOLUTION, WIDTH

        if self.width not in (None, WIDTH) or self.resolution != RESOLUTION:
            raise SettingError(
                f"the DyNAS-T accuracy is of w{WIDTH:.1f} networks at {RESOLUTION} px, got width {self.width} at "
                f"{self.resolution} px; leave --width out, or use --accuracy supernet for another width"
            )
        if self.data != "digits" or self.checkpoint is not None:
            raise SettingError(
                "--data and --checkpoint feed the supernet, but accuracy is 'dynast'; add --accuracy supernet, or drop them"
            )

    def check_paths(self) -> None:
        """The given data folder and checkpoint exist (checked when a run starts, not when a saved config is read)."""
        if self.data != "digits" and not Path(self.data).is_dir():
            raise SettingError(f"data must be 'digits' or an ImageNet-layout folder (DIR/train, DIR/val), got {self.data!r}")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise SettingError(
                f"supernet checkpoint {self.checkpoint!r} is not a file; give OFA's published checkpoint or 'nag supernet train' output"
            )

    @property
    def network_width(self) -> float:
        """The width of the measured networks: ``width``, else DyNAS-T's 1.0 or the supernet's 1.2."""
        from nag.accuracy.dynast import WIDTH

        if self.width is not None:
            return self.width
        return WIDTH if self.accuracy == "dynast" else SUPERNET_WIDTH

    @property
    def accuracy_resolution(self) -> int:
        """Pixels of the accuracy data: ``data_resolution``, else 32 for digits and ``resolution`` for a folder."""
        if self.data_resolution is not None:
            return self.data_resolution
        return 32 if self.data == "digits" else self.resolution

    @property
    def data_label(self) -> str:
        """How the report names the held-out images (split into search-validation and test)."""
        return "held-out digits" if self.data == "digits" else f"{self.data}/val"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> DemoConfig:
        """The config :meth:`to_dict` wrote; unknown keys raise :class:`SettingError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        if set(value) - known:
            raise SettingError(f"unknown demo settings {sorted(set(value) - known)}; known: {sorted(known)}")
        changes = {**value, "phase_epochs": tuple(value.get("phase_epochs", cls.phase_epochs))}
        if "search" in value:
            changes["search"] = SearchConfig.from_dict(value["search"])
        return cls(**changes)

    def replace(self, **changes: Any) -> DemoConfig:
        return dataclasses.replace(self, **changes)


# A few minutes' pipeline with the same stages, for tests and smoke runs: short training and search, few subnets.
QUICK = DemoConfig(
    runs=5,
    warmup=2,
    validate_networks=4,
    phase_epochs=(1.0, 1.0, 1.0, 1.0),
    max_steps_per_epoch=4,
    subnets=24,
    calib_images=64,
    search=SearchConfig(
        num_budgets=4,
        evaluator=EvaluatorConfig(steps=60, archs_per_step=16),  # all pairs of 16 rows a step
        generator=GeneratorConfig(iterations=20, archs_per_budget=8),
        surrogate=SurrogateConfig(steps=60, batch_size=32),
    ),
    budgets=3,
    histogram_samples=200,
)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able ``parts``: equal settings and inputs, equal fingerprint."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
