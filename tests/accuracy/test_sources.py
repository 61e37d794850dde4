"""Accuracy sources: OFA's published predictor layout, and table rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nag.accuracy import AccuracySource
from nag.accuracy.ofa_predictor import OFAAccuracyPredictor, PredictorCheckpointError
from nag.accuracy.table import TableAccuracySource, UnlabelledArchitectureError
from nag.errors import SettingError
from nag.search.synthetic import SyntheticProblem
from nag.space.ofa_mbv3 import OFAMobileNetV3Space
from tests.accuracy.ofa_checkpoint import ofa_mlp
from tests.conftest import PNAG_80_MOBILE


def _features_by_hand(arch: str, resolution: int) -> torch.Tensor:
    """OFA's 128 inputs written from the notes, independently of ``space.encode``."""
    depths, kernels, expands = ([int(v) for v in part.split(",")] for part in arch.split(":"))
    vector = torch.zeros(128)
    for slot in range(20):
        if slot % 4 < depths[slot // 4]:
            vector[slot * 3 + (3, 5, 7).index(kernels[slot])] = 1.0
            vector[60 + slot * 3 + (3, 4, 6).index(expands[slot])] = 1.0
    vector[120 + (resolution - 112) // 16] = 1.0
    return vector


@pytest.mark.parametrize("resolution", [224, 160])
def test_ofa_predictor_layout(tmp_path: Path, space: OFAMobileNetV3Space, resolution: int) -> None:
    net = ofa_mlp()
    path = tmp_path / "acc_predictor.pth"
    torch.save(net.state_dict(), path)
    assert sorted(net.state_dict()) == ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight", "6.bias", "6.weight"]
    predictor = OFAAccuracyPredictor(path, resolution=resolution)
    assert isinstance(predictor, AccuracySource)
    archs = [PNAG_80_MOBILE, *[space.format(a) for a in space.sample_many(3, seed=1)]]
    with torch.no_grad():
        expected = [float(net(_features_by_hand(a, resolution))) for a in archs]
    assert predictor.accuracy(archs) == pytest.approx(expected, abs=1e-6)
    assert all(0.7 < v < 0.8 for v in expected)


def test_ofa_predictor_later_layout_and_bad_files(tmp_path: Path) -> None:
    net = ofa_mlp()
    later = {f"layers.{k}": v for k, v in net.state_dict().items()} | {"base_acc": torch.tensor(0.01)}
    torch.save(later, tmp_path / "later.pth")
    plain = tmp_path / "plain.pth"
    torch.save(net.state_dict(), plain)
    assert OFAAccuracyPredictor(tmp_path / "later.pth").accuracy([PNAG_80_MOBILE])[0] == pytest.approx(
        OFAAccuracyPredictor(plain).accuracy([PNAG_80_MOBILE])[0] + 0.01
    )
    wrong = nn.Sequential(
        nn.Linear(120, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU(), nn.Linear(400, 1)
    )
    torch.save(wrong.state_dict(), tmp_path / "wrong.pth")
    with pytest.raises(PredictorCheckpointError, match=r"layer 0 has weight \(400, 120\)"):
        OFAAccuracyPredictor(tmp_path / "wrong.pth")
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(PredictorCheckpointError, match="not OFA's accuracy predictor"):
        OFAAccuracyPredictor(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PredictorCheckpointError, match="not a torch checkpoint"):
        OFAAccuracyPredictor(tmp_path / "junk.pth")
    with pytest.raises(SettingError, match=r"resolutions 112\.\.239"):
        OFAAccuracyPredictor(plain, resolution=256)
    with pytest.raises(PredictorCheckpointError, match="does not exist"):
        OFAAccuracyPredictor(tmp_path / "none.pth")


def test_table_source_labels_its_rows_only(space: OFAMobileNetV3Space) -> None:
    table = SyntheticProblem(seed=0).table(200, seed=1)
    source = TableAccuracySource(table)
    assert isinstance(source, AccuracySource) and source.archs == list(dict.fromkeys(table.archs))
    parsed = space.parse(table.archs[3])
    assert source.accuracy([table.archs[7], parsed]) == [table.accuracy[7], table.accuracy[3]]  # type: ignore[index]
    with pytest.raises(UnlabelledArchitectureError, match=r"is not in synthetic.*use ofa-predictor:PATH"):
        source.accuracy([PNAG_80_MOBILE])
