"""OFA's published accuracy predictor (``acc_predictor.pth``) as an accuracy source.

The checkpoint is the state dict of ``nn.Sequential(Linear(128, 400), ReLU, Linear(400, 400), ReLU,
Linear(400, 400), ReLU, Linear(400, 1))`` (keys ``0.weight``, ``0.bias``, ``2.*``, ``4.*``, ``6.*``; a
``layers.`` prefix and a ``base_acc`` scalar, as in later OFA releases, are accepted too). Its input, for
an ``ofa-mbv3`` architecture at resolution r::

    60 one-hot kernel features   (3 per slot, order 3/5/7; unused slots all-zero)
    60 one-hot expand features   (3 per slot, order 3/4/6; unused slots all-zero)
     8 one-hot resolution features, index (r - 112) // 16   (r in 112..239; OFA uses 160..224)

which is ``space.encode`` (the same 120 features) plus the resolution. Its output is top-1 accuracy as a
fraction (plus ``base_acc`` when the checkpoint has one).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nag.errors import NagError, SettingError
from nag.space import get_space

__all__ = ["OFAAccuracyPredictor", "PredictorCheckpointError"]

LAYER_SHAPES = {"0": (400, 128), "2": (400, 400), "4": (400, 400), "6": (1, 400)}
NUM_RESOLUTIONS = 8


class PredictorCheckpointError(NagError, ValueError):
    """The file is not an OFA accuracy-predictor checkpoint of the expected layout."""


def _normalise(state: Any, path: Path) -> tuple[dict[str, Any], float]:
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PredictorCheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = {(k[len("layers.") :] if k.startswith("layers.") else k): v for k, v in state.items()}
    base = state.pop("base_acc", None)
    expected = {f"{layer}.{part}" for layer in LAYER_SHAPES for part in ("weight", "bias")}
    if set(state) != expected:
        raise PredictorCheckpointError(
            f"{path}: keys {sorted(state)} are not OFA's accuracy predictor {sorted(expected)} "
            "(nn.Sequential(Linear(128,400), ReLU, Linear(400,400), ReLU, Linear(400,400), ReLU, Linear(400,1)))"
        )
    for layer, shape in LAYER_SHAPES.items():
        weight, bias = state[f"{layer}.weight"], state[f"{layer}.bias"]
        if tuple(weight.shape) != shape or tuple(bias.shape) != (shape[0],):
            raise PredictorCheckpointError(
                f"{path}: layer {layer} has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}; expected {shape} and ({shape[0]},)"
            )
    return state, 0.0 if base is None else float(base)


class OFAAccuracyPredictor:
    """Top-1 accuracy of ``ofa-mbv3`` architectures from OFA's MLP predictor; an :class:`nag.accuracy.AccuracySource`.

    Loads on construction (imports torch); raises :class:`PredictorCheckpointError` for a file of another
    layout and :class:`SettingError` for a resolution outside 112..239. Read-only after construction.
    """

    def __init__(self, path: str | os.PathLike[str], *, resolution: int = 224, space: str = "ofa-mbv3") -> None:
        import torch
        from torch import nn

        file = Path(path)
        if not file.is_file():
            raise PredictorCheckpointError(
                f"accuracy predictor {str(file)!r} does not exist; give the path of OFA's acc_predictor.pth"
            )
        index = (resolution - 112) // 16
        if (
            isinstance(resolution, bool)
            or not isinstance(resolution, int)
            or not 0 <= index < NUM_RESOLUTIONS
            or resolution < 112
        ):
            raise SettingError(
                f"OFA's accuracy predictor covers resolutions 112..239 (8 steps of 16), got {resolution!r}; e.g. 224"
            )
        self._space = get_space(space)
        if self._space.encoding_size != 120:
            raise SettingError(
                f"OFA's accuracy predictor reads 120 architecture features; space {space!r} encodes {self._space.encoding_size}"
            )
        try:
            loaded = torch.load(file, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise PredictorCheckpointError(f"{file}: not a torch checkpoint ({exc})") from None
        state, self.base_acc = _normalise(loaded, file)
        self._net = nn.Sequential(
            nn.Linear(128, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 1)
        )
        self._net.load_state_dict(state)
        self._net.eval()
        self.resolution = resolution
        self._resolution_index = index

    @property
    def space(self) -> str:
        return self._space.name

    def features(self, archs: Sequence[Any]) -> list[list[float]]:
        """The predictor's 128 input features of each architecture."""
        one_hot = [0.0] * NUM_RESOLUTIONS
        one_hot[self._resolution_index] = 1.0
        return [self._space.encode(self._space.parse(a)) + one_hot for a in archs]

    def accuracy(self, archs: Sequence[Any]) -> list[float]:
        import torch

        if not archs:
            return []
        with torch.no_grad():
            out = self._net(torch.tensor(self.features(archs), dtype=torch.float32)).squeeze(1) + self.base_acc
        return [float(v) for v in out]
