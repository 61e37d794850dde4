"""``nag demo``: the whole pipeline on the embedded default, for real, in its QUICK size; and its parts."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from farm.lut import LutPredictor, network_latencies
from farm.store import Store, TableKey
from nag.demo import QUICK, DemoConfig, run_demo
from nag.demo.config import fingerprint
from nag.demo.pipeline import demo_budgets
from nag.demo.report import quantile_bins, spearman
from nag.errors import SettingError
from nag.reporting import pareto_front
from nag.space.ofa_mbv3 import OFAMobileNetV3Space


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def loopback_farm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The demo's local farm on loopback, without token auth, exporting into a test cache."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("NAG_RAY_NODE_IP", "127.0.0.2")
    monkeypatch.setenv("NAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NAG_AGENTS_CONFIG", raising=False)
    return tmp_path / "demo"


def test_demo_runs_every_stage_for_real_and_a_rerun_reuses_them(loopback_farm: Path, space: OFAMobileNetV3Space) -> None:
    out = loopback_farm
    first = run_demo(out, QUICK, progress=False)

    # The report: figures, tables, a self-contained page.
    for name in ("frontier.png", "histogram.png", "validation.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (out / "report.html").read_text()
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # nothing fetched from elsewhere
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"].split(" ")[0] for s in summary["stages"]] == ["latency", "supernet", "subnet", "PNAG", "generate"]
    assert not any(s["reused"] for s in summary["stages"])

    # Sampled subnets: their latency is the farm table's prediction, their accuracy the supernet's table.
    key = TableKey(**summary["latency_table"]["key"])
    accuracies = {r["arch"]: float(r["accuracy"]) for r in _rows(out / summary["files"]["subnets"])}
    sampled = _rows(out / "sampled.csv")
    assert [r["arch"] for r in sampled] == [space.format(a) for a in space.sample_many(QUICK.subnets, seed=QUICK.search.seed)]
    with Store(out / "latency.db", create=False) as store:
        predictor = LutPredictor(store, key)
        assert [float(r["latency_ms"]) for r in sampled] == pytest.approx(predictor.predict_ms([r["arch"] for r in sampled]))
        measured = network_latencies(store, key, statistic=predictor.statistic)
    assert all(float(r["accuracy"]) == pytest.approx(accuracies[r["arch"]], abs=1e-6) for r in sampled)
    assert all(0.0 <= a <= 1.0 for a in accuracies.values())
    trend = summary["sampled"]["accuracy_vs_latency"]
    expected = spearmanr([float(r["latency_ms"]) for r in sampled], [float(r["accuracy"]) for r in sampled]).statistic
    assert trend["rho"] == pytest.approx(expected)
    assert sum(b["n"] for b in trend["quintiles"]) == QUICK.subnets

    # Generated architectures: one per budget, measured on the farm, scored by the supernet.
    generated = _rows(out / "generated.csv")
    assert len(generated) == QUICK.budgets
    budgets = [float(g["budget_ms"]) for g in generated]
    assert budgets == sorted(budgets) and budgets == demo_budgets([float(r["latency_ms"]) for r in sampled], QUICK.budgets)
    for row in generated:
        space.parse(row["arch"])
        assert float(row["measured_ms"]) == pytest.approx(measured[row["arch"]])
        assert float(row["top1"]) == pytest.approx(accuracies[row["arch"]], abs=1e-6)
        assert (row["feasible"] == "True") == (float(row["latency_ms"]) <= float(row["budget_ms"]))
    assert [p["n"] for p in summary["proposals"]] == [QUICK.histogram_samples] * QUICK.budgets

    # A second run reuses every stage's output and answers the same.
    stamps = {
        name: (out / name).stat().st_mtime_ns for name in ("supernet.pt", summary["files"]["subnets"], "search/evaluator.pt")
    }
    second = run_demo(out, QUICK, progress=False)
    assert [s.reused for s in second.stages] == [True, True, True, True, False]
    assert {name: (out / name).stat().st_mtime_ns for name in stamps} == stamps
    assert [g["arch"] for g in second.generated] == [g["arch"] for g in first.generated]
    assert "0 measured now" in second.stages[0].detail

    # A given checkpoint with the same weights, and more subnets: nothing is trained, only the new subnets are
    # evaluated (accuracies follow the checkpoint's content), and the search reruns on the larger sample.
    given = loopback_farm.parent / "given.pt"
    shutil.copy(out / "supernet.pt", given)
    third = run_demo(out, QUICK.replace(subnets=QUICK.subnets + 2, checkpoint=str(given)), progress=False)
    assert [s.reused for s in third.stages[:4]] == [True, True, False, False]
    assert third.stages[1].detail == f"given: {given}"
    assert "2 evaluated now" in third.stages[2].detail
    assert third.files == first.files  # the same weights: the same table of accuracies
    table = [r["arch"] for r in _rows(out / third.files["subnets"])]  # sampled subnets, and the generated ones scored
    assert len(table) == len(set(table)) and {r["arch"] for r in _rows(out / "sampled.csv")} <= set(table)
    assert len(_rows(out / "sampled.csv")) == QUICK.subnets + 2
    assert str(given) in (out / "report.html").read_text()


def test_budgets_spread_between_the_10th_and_90th_percentiles() -> None:
    latencies = [float(i) for i in range(1, 102)]  # 1..101: 10th percentile 11, 90th 91
    assert demo_budgets(latencies, 5) == [11.0, 31.0, 51.0, 71.0, 91.0]
    assert demo_budgets(latencies, 1) == [51.0]


def test_pareto_front_keeps_only_undominated_points() -> None:
    points = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.6), (4.0, 0.9), (0.5, 0.1)]
    assert pareto_front(points) == [(0.5, 0.1), (1.0, 0.5), (2.0, 0.7), (4.0, 0.9)]


def test_quantile_bins_average_equal_groups_by_x() -> None:
    xs = [5.0, 1.0, 4.0, 2.0, 3.0, 6.0]
    ys = [0.5, 0.1, 0.4, 0.2, 0.3, 0.7]
    bins = quantile_bins(xs, ys, bins=3)
    assert [b["n"] for b in bins] == [2, 2, 2]
    assert [b["x"] for b in bins] == pytest.approx([1.5, 3.5, 5.5])
    assert [b["y"] for b in bins] == pytest.approx([0.15, 0.35, 0.6])
    assert bins[2]["se"] == pytest.approx(0.1)  # sample std 0.1414 of (0.5, 0.7), over sqrt(2)


def test_a_checkpoint_that_does_not_fit_the_data_fails_before_anything_runs(tmp_path: Path) -> None:
    from PIL import Image

    from nag.accuracy.supernet import OFAMobileNetV3Supernet, save_supernet

    for split in ("train", "val"):
        for label in ("cat", "dog"):
            (tmp_path / "images" / split / label).mkdir(parents=True)
            Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "images" / split / label / "a.png")
    checkpoint = tmp_path / "digits.pt"
    save_supernet(OFAMobileNetV3Supernet(width=1.0, num_classes=10), checkpoint)
    images = str(tmp_path / "images")
    with pytest.raises(SettingError, match="is a width-1 supernet; run with --width 1"):
        run_demo(tmp_path / "out", QUICK.replace(checkpoint=str(checkpoint), data=images), progress=False)
    with pytest.raises(SettingError, match=r"classifies 10 classes but .* has 2; give the data it was trained on"):
        run_demo(tmp_path / "out", QUICK.replace(checkpoint=str(checkpoint), data=images, width=1.0), progress=False)
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_spearman_is_undefined_for_constant_values() -> None:
    assert spearman([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]) == {"rho": None, "p_value": None}
    assert spearman([1.0, 2.0, 3.0, 4.0], [0.1, 0.3, 0.2, 0.4])["rho"] == pytest.approx(0.8)


def test_demo_config_refuses_bad_settings_with_a_clear_message() -> None:
    with pytest.raises(SettingError, match="kind must be one of ort-cpu, litert-cpu, got 'adb-litert'"):
        DemoConfig(kind="adb-litert")
    with pytest.raises(SettingError, match="validate_networks must be at least 4"):
        DemoConfig(validate_networks=3)
    with pytest.raises(SettingError, match="subnets must be a positive integer, got 0"):
        DemoConfig(subnets=0)
    with pytest.raises(SettingError, match="data must be 'digits' or an ImageNet-layout folder"):
        DemoConfig(data="/no/such/folder")
    with pytest.raises(SettingError, match=r"supernet checkpoint '/no/such\.pt' is not a file"):
        DemoConfig(checkpoint="/no/such.pt")
    with pytest.raises(SettingError, match="phase_epochs needs 4"):
        DemoConfig(phase_epochs=(1.0, 1.0))  # type: ignore[arg-type]


def test_fingerprints_follow_the_settings() -> None:
    assert fingerprint("a", {"x": 1, "y": 2}) == fingerprint("a", {"y": 2, "x": 1})
    assert fingerprint("a", QUICK.to_dict()) != fingerprint("a", QUICK.replace(subnets=30).to_dict())
