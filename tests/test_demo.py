"""``nag demo``: the whole pipeline on the embedded default, for real, in its QUICK size; and its parts."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy.stats import spearmanr

from farm.lut import LutPredictor, network_latencies
from farm.store import Store, TableKey
from nag.accuracy.dynast import dynast_source, dynast_table
from nag.accuracy.supernet.evaluation import EvalSettings, SubnetEvaluator
from nag.cli import build_parser, main
from nag.cli.demo import _config
from nag.demo import QUICK, DemoConfig, DemoResult, run_demo
from nag.demo.accuracy import check_supernet_inputs, heldout_split, split_data
from nag.demo.config import fingerprint
from nag.demo.pipeline import demo_budgets
from nag.demo.report import quantile_bins, spearman
from nag.errors import SettingError
from nag.reporting import pareto_front

SUPERNET = QUICK.replace(accuracy="supernet", width=1.0)  # w1.0, as DyNAS-T: both paths share one latency table


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _loopback(patch: pytest.MonkeyPatch, cache: Path) -> None:
    """The demo's local farm on loopback, without token auth, exporting into a test cache."""
    patch.setenv("RAY_AUTH_MODE", "disabled")
    patch.setenv("NAG_RAY_NODE_IP", "127.0.0.2")
    patch.setenv("NAG_CACHE_DIR", str(cache))
    patch.delenv("NAG_AGENTS_CONFIG", raising=False)


@pytest.fixture(scope="module")
def dynast_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DemoResult]]:
    """One QUICK demo on the default (DyNAS-T) landscape; the tests below rerun into its folder, ending on dynast."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        _loopback(patch, root / "cache")
        out = root / "demo"
        yield out, run_demo(out, QUICK, progress=False)


def test_the_default_demo_searches_the_dynast_rows_at_farm_latencies(dynast_demo: tuple[Path, DemoResult]) -> None:
    out, first = dynast_demo
    summary = first.summary
    assert [s.name.split(" ")[0] for s in first.stages] == ["latency", "accuracy", "PNAG", "generate"]
    assert not any(s.reused for s in first.stages)

    # The report: figures, tables, a self-contained page, and demo.json.
    for name in ("frontier.png", "histogram.png", "validation.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (out / "report.html").read_text()
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # nothing fetched from elsewhere
    assert DemoConfig.from_dict(json.loads((out / "demo.json").read_text())["config"]) == QUICK

    # The latency table is this machine's at w1.0, 224 px: the DyNAS-T rows' width and resolution.
    key = TableKey(**summary["latency_table"]["key"])
    assert (key.width, key.resolution) == (1.0, 224)

    # The search's labelled rows: every DyNAS-T row, its real top-1, its latency from the farm table.
    archs, top1 = dynast_table()
    sampled = _rows(out / "sampled.csv")
    assert [r["arch"] for r in sampled] == archs
    assert [float(r["accuracy"]) for r in sampled] == pytest.approx(top1, abs=1e-12)
    with Store(out / "latency.db", create=False) as store:
        predictor = LutPredictor(store, key)
        assert [float(r["latency_ms"]) for r in sampled] == pytest.approx(predictor.predict_ms(archs))
        measured = network_latencies(store, key, statistic=predictor.statistic)
    trend = summary["sampled"]["accuracy_vs_latency"]
    assert trend["rho"] == pytest.approx(spearmanr([float(r["latency_ms"]) for r in sampled], top1).statistic)

    # The generated networks: measured on the farm; top-1 is the DyNAS-T predictor's value, labelled an estimate.
    generated = _rows(out / "generated.csv")
    assert len(generated) == QUICK.budgets
    assert [float(g["budget_ms"]) for g in generated] == demo_budgets([float(r["latency_ms"]) for r in sampled], QUICK.budgets)
    estimates = dynast_source().accuracy([g["arch"] for g in generated])
    for row, estimate in zip(generated, estimates, strict=True):
        assert float(row["measured_ms"]) == pytest.approx(measured[row["arch"]])
        assert float(row["top1"]) == pytest.approx(estimate, abs=1e-12)
        assert (row["feasible"] == "True") == (float(row["latency_ms"]) <= float(row["budget_ms"]))
    # The machine's speed now against the table's build: the references' median ratio, applied to the predictions.
    rescale = first.rescale
    ratios = sorted(r["now_ms"] / r["build_ms"] for r in rescale["references"])
    assert rescale["factor"] == pytest.approx(ratios[len(ratios) // 2]) and rescale["low"] <= rescale["factor"] <= rescale["high"]
    for row in generated:
        assert float(row["rescaled_ms"]) == pytest.approx(float(row["latency_ms"]) * rescale["factor"], rel=1e-9)
    assert "Predicted now" in page and f"{rescale['factor']:.3f}" in page
    fit = summary["accuracy"]["cross_fit"]  # the predictor's cross-fitted error, as FIT.md reports it
    assert (round(fit["rmse_points"], 3), round(fit["kendall_tau"], 3), fit["n"]) == (0.065, 0.965, len(archs))
    assert "top-1 (predictor estimate)" in page and "RMSE 0.065 points" in page
    assert [p["n"] for p in summary["proposals"]] == [QUICK.histogram_samples] * QUICK.budgets


def test_a_rerun_reuses_every_stage_and_nag_report_redraws_the_page(
    dynast_demo: tuple[Path, DemoResult], capsys: pytest.CaptureFixture[str]
) -> None:
    out, first = dynast_demo
    stamps = {name: (out / name).stat().st_mtime_ns for name in ("search/evaluator.pt", "dynast-fit.json")}
    again = run_demo(out, QUICK, progress=False)
    assert [s.reused for s in again.stages] == [True, True, True, True]
    assert "0 measured now" in again.stages[0].detail
    assert {name: (out / name).stat().st_mtime_ns for name in stamps} == stamps
    # the answers, their measurements and the references' check are the first run's: nothing measured again
    assert again.generated == first.generated
    assert again.rescale == first.rescale
    assert "as generated and measured by the earlier run" in again.stages[3].detail

    # nag report DIR rebuilds the page (and the figures) from demo.json alone.
    for name in ("report.html", "frontier.png", "summary.json"):
        (out / name).unlink()
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    page = (out / "report.html").read_text()
    assert all(g["arch"] in page for g in again.generated)
    assert all(stage.detail in page for stage in again.stages)
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "summary.json").read_text())["generated"] == again.summary["generated"]


def test_switching_to_the_supernet_scores_generated_networks_on_the_test_split(dynast_demo: tuple[Path, DemoResult]) -> None:
    out, _ = dynast_demo
    result = run_demo(out, SUPERNET, progress=False)
    # The latency table is shared (w1.0); the dynast search is not reused for the supernet's labels.
    assert [s.name.split(" ")[0] for s in result.stages] == ["latency", "supernet", "subnet", "PNAG", "generate"]
    assert [s.reused for s in result.stages] == [True, False, False, False, False]

    # Labels: the sampled subnets on the search-validation split; scores: the generated ones on the test split.
    space_archs = [r["arch"] for r in result.sampled]
    labelled = {r["arch"]: float(r["accuracy"]) for r in _rows(out / result.files["subnets"])}
    tested = {r["arch"]: float(r["accuracy"]) for r in _rows(out / result.files["test"])}
    assert set(labelled) == set(space_archs) and len(space_archs) == SUPERNET.subnets
    assert all(r["accuracy"] == pytest.approx(labelled[r["arch"]], abs=1e-6) for r in result.sampled)
    assert set(tested) == {g["arch"] for g in result.generated}  # the test split scored these and nothing else
    _, test_data = split_data(check_supernet_inputs(SUPERNET), test_fraction=SUPERNET.test_fraction, seed=SUPERNET.seed)
    settings = EvalSettings(calib_images=SUPERNET.calib_images, batch_size=500, seed=SUPERNET.seed)
    evaluator = SubnetEvaluator(out / "supernet.pt", test_data, settings)
    for row in result.generated:
        _, top1, n_images = evaluator.evaluate(row["arch"])
        assert row["top1"] == pytest.approx(top1, abs=1e-6)
        assert tested[row["arch"]] == pytest.approx(top1, abs=1e-6)
        assert n_images == len(test_data.val) == result.accuracy["splits"]["test"]  # type: ignore[arg-type]
    assert result.accuracy["splits"] == {"train": 1078, "search_validation": 359, "test": 360}
    page = (out / "report.html").read_text()
    assert "top-1 (test split)" in page and "360 test (score the generated networks only)" in page

    # A given checkpoint with the same weights, and more subnets: nothing is trained, only the new subnets are
    # evaluated (accuracies follow the checkpoint's content), and the search reruns on the larger sample.
    given = out.parent / "given.pt"
    shutil.copy(out / "supernet.pt", given)
    third = run_demo(out, SUPERNET.replace(subnets=SUPERNET.subnets + 2, checkpoint=str(given)), progress=False)
    assert [s.reused for s in third.stages[:4]] == [True, True, False, False]
    assert third.stages[1].detail == f"given: {given}"
    assert "2 evaluated now" in third.stages[2].detail
    assert third.files == result.files  # the same weights: the same tables of accuracies
    assert len(_rows(out / "sampled.csv")) == SUPERNET.subnets + 2
    assert str(given) in (out / "report.html").read_text()

    # Back to dynast: the latency table and the cross-fit are reused, the search is retrained on the DyNAS-T rows.
    back = run_demo(out, QUICK, progress=False)
    assert [s.reused for s in back.stages] == [True, True, False, False]
    assert [g["top1"] for g in back.generated] == pytest.approx(dynast_source().accuracy([g["arch"] for g in back.generated]))


def test_heldout_split_is_deterministic_disjoint_and_covers_every_image() -> None:
    search, test = heldout_split(359, test_fraction=0.5, seed=0)
    assert (search, test) == heldout_split(359, test_fraction=0.5, seed=0)
    assert not set(search) & set(test) and sorted(search + test) == list(range(359)) and len(test) == 180
    assert heldout_split(359, test_fraction=0.5, seed=1) != (search, test)
    with pytest.raises(SettingError, match="cannot be split into search-validation and test"):
        heldout_split(1, test_fraction=0.5, seed=0)

    # On the images themselves: train, search-validation and test share no digit, and together hold all 1,797.
    data = check_supernet_inputs(SUPERNET)
    search_data, test_data = split_data(data, test_fraction=SUPERNET.test_fraction, seed=SUPERNET.seed)
    assert search_data.train is data.train is test_data.train  # batch-norm recalibration: training images only

    def images(dataset: object) -> set[str]:
        return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image, _ in dataset}  # type: ignore[attr-defined]

    train, searched, tested = images(data.train), images(search_data.val), images(test_data.val)
    assert (len(train), len(searched), len(tested)) == (1078, 359, 360)
    assert not (train & searched or train & tested or searched & tested)
    again = split_data(check_supernet_inputs(SUPERNET), test_fraction=SUPERNET.test_fraction, seed=SUPERNET.seed)
    assert images(again[1].val) == tested


def test_nag_report_on_a_demo_folder_without_demo_json_says_to_rerun_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "demo-state.json").write_text("{}")
    (tmp_path / "report.html").write_text("<html></html>")
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "has no demo.json" in error and f"rerun 'nag demo --out {tmp_path}'" in error
    assert (tmp_path / "report.html").read_text() == "<html></html>"  # nothing redrawn from nothing


def test_demo_flags_choose_the_accuracy_path() -> None:
    def config(*flags: str) -> DemoConfig:
        return _config(build_parser().parse_args(["demo", *flags]))

    default = config()
    assert (default.accuracy, default.network_width) == ("dynast", 1.0)
    assert config("--quick") == QUICK
    assert config("--accuracy", "supernet").network_width == 1.2
    assert (config("--data", "digits").accuracy, config("--subnets", "30").subnets) == ("supernet", 30)
    assert config("--accuracy", "supernet", "--quick", "--width", "1.0") == SUPERNET
    with pytest.raises(SettingError, match=r"DyNAS-T accuracy is of w1\.0 networks .* use --accuracy supernet"):
        config("--width", "1.2")
    with pytest.raises(SettingError, match="--data, --subnets only apply to --accuracy supernet"):
        config("--accuracy", "dynast", "--data", "digits", "--subnets", "30")
    with pytest.raises(SettingError, match="--data and --checkpoint feed the supernet, but accuracy is 'dynast'"):
        DemoConfig(data="digits", checkpoint="supernet.pt")  # the same rule for the API


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
    given = QUICK.replace(accuracy="supernet", checkpoint=str(checkpoint), data=images)
    with pytest.raises(SettingError, match="is a width-1 supernet; run with --width 1"):
        run_demo(tmp_path / "out", given, progress=False)
    with pytest.raises(SettingError, match=r"classifies 10 classes but .* has 2; give the data it was trained on"):
        run_demo(tmp_path / "out", given.replace(width=1.0), progress=False)
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


@pytest.mark.parametrize("n", [4, 30, 400])
def test_spearman_is_scipys_with_ties(n: int) -> None:
    rng = random.Random(n)
    xs = [float(rng.randint(0, 6)) for _ in range(n)]  # many ties
    ys = [x + 4 * rng.random() for x in xs]
    found, expected = spearman(xs, ys), spearmanr(xs, ys)
    assert found["rho"] == pytest.approx(expected.statistic, rel=1e-12)
    assert found["p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


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
        DemoConfig(accuracy="supernet", data="/no/such/folder").check_paths()
    with pytest.raises(SettingError, match=r"supernet checkpoint '/no/such\.pt' is not a file"):
        DemoConfig(accuracy="supernet", checkpoint="/no/such.pt").check_paths()
    with pytest.raises(SettingError, match="accuracy must be one of dynast, supernet, got 'imagenet'"):
        DemoConfig(accuracy="imagenet")
    with pytest.raises(SettingError, match="test_fraction must be in"):
        DemoConfig(test_fraction=1.0)
    with pytest.raises(SettingError, match="phase_epochs needs 4"):
        DemoConfig(phase_epochs=(1.0, 1.0))  # type: ignore[arg-type]


def test_fingerprints_follow_the_settings() -> None:
    assert fingerprint("a", {"x": 1, "y": 2}) == fingerprint("a", {"y": 2, "x": 1})
    assert fingerprint("a", QUICK.to_dict()) != fingerprint("a", QUICK.replace(subnets=30).to_dict())
