"""What ``nag demo`` runs: one frozen :class:`DemoConfig`, with the default sized for a 2-core laptop.

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

__all__ = ["QUICK", "DemoConfig", "fingerprint"]

KINDS = ("ort-cpu", "litert-cpu")


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
    width: float = 1.2  # width multiplier of the space (the paper's 1.2)
    resolution: int = 224  # input pixels of the measured networks (the paper's); at 32 px a CPU's latencies are noise
    runs: int = 15  # timed samples per measurement
    warmup: int = 5  # warm-up inferences per measurement
    validate_networks: int = 12  # random whole networks measured to calibrate and validate the block table
    # Accuracy: a supernet trained by progressive shrinking on the embedded digits, then subnets evaluated.
    data: str = "digits"  # "digits" (embedded, the proxy) or an ImageNet-layout folder DIR/{train,val}/<class>/
    data_resolution: int | None = None  # pixels of the accuracy data; None: 32 for digits, else ``resolution``
    checkpoint: str | None = None  # a trained supernet (OFA's published file, 'nag supernet train'); None: train one
    phase_epochs: tuple[float, float, float, float] = (3.0, 1.0, 1.0, 1.0)  # largest, kernel, depth, expand
    batch_size: int = 64
    lr: float = 0.05
    max_steps_per_epoch: int | None = None  # cap per epoch (quick runs); None: the whole training set
    subnets: int = 150  # uniformly sampled subnets evaluated: the labelled architectures of the search
    calib_images: int = 200  # training images that re-estimate a subnet's batch-norm statistics
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
        if self.data != "digits" and not Path(self.data).is_dir():
            raise SettingError(f"data must be 'digits' or an ImageNet-layout folder (DIR/train, DIR/val), got {self.data!r}")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise SettingError(
                f"supernet checkpoint {self.checkpoint!r} is not a file; give OFA's published checkpoint or 'nag supernet train' output"
            )
        if len(self.phase_epochs) != 4 or any(e < 0 for e in self.phase_epochs):
            raise SettingError(
                f"phase_epochs needs 4 non-negative values (largest, kernel, depth, expand), got {self.phase_epochs}"
            )

    @property
    def accuracy_resolution(self) -> int:
        """Pixels of the accuracy data: ``data_resolution``, else 32 for digits and ``resolution`` for a folder."""
        if self.data_resolution is not None:
            return self.data_resolution
        return 32 if self.data == "digits" else self.resolution

    @property
    def data_label(self) -> str:
        """How the report names the accuracy's validation images."""
        return "held-out digits" if self.data == "digits" else f"{self.data}/val"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
        evaluator=EvaluatorConfig(steps=60, pairs_per_step=64),
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
