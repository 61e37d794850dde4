"""A new device's table from a few networks: the choice of networks, the block-feature model and its honest error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from farm.bootstrap import FEATURES, MIN_NETWORKS, Design, block_features, choose_networks, fit_scaling
from nag.errors import SettingError
from nag.space import count_costs, get_space

SPACE, WIDTH, RESOLUTION = "ofa-mbv3", 1.2, 160


@pytest.fixture(scope="module")
def design() -> Design:
    """A source table: each block's latency grows with its multiply-adds, with a per-block quirk."""
    rng = np.random.default_rng(0)
    blocks = get_space(SPACE).all_blocks(width=WIDTH, resolution=RESOLUTION)
    values = {b.key: 0.02 + 2e-8 * count_costs([b]).madds * rng.uniform(0.7, 1.3) for b in blocks}
    return Design(values, space=SPACE, width=WIDTH, resolution=RESOLUTION)


def _device(design: Design, factor_of: object, offset: float, noise: float, archs: list[str]) -> np.ndarray:
    """Whole-network latencies of a device whose block b takes ``factor_of(b)`` times the source's."""
    space = get_space(SPACE)
    blocks = {b.key: b for b in space.all_blocks(width=WIDTH, resolution=RESOLUTION)}
    factors = np.array([factor_of(blocks[key]) for key in design.keys])  # type: ignore[operator]
    latency = offset + design.usage(archs) @ (design.values * factors)
    return latency * (1 + np.random.default_rng(1).normal(0, noise, len(archs)))


def _fresh(n: int) -> list[str]:
    space = get_space(SPACE)
    return [space.format(a) for a in space.sample_many(n, seed=9)]


def test_the_chosen_networks_spread_over_what_the_model_learns_from(design: Design) -> None:
    chosen = choose_networks(design, 20)
    assert len(set(chosen)) == 20 and chosen == choose_networks(design, 20)
    picked, drawn = design.directions(design.usage(chosen)), design.directions(design.usage(_fresh(20)))
    spread = np.ptp(picked, axis=0) / np.where(np.ptp(drawn, axis=0) > 0, np.ptp(drawn, axis=0), 1)
    assert np.median(spread) > 1.2  # wider than 20 random networks along most directions
    assert picked[0, 0] == picked[:, 0].min() and picked[1, 0] == picked[:, 0].max()  # the cheapest, the dearest first
    with pytest.raises(SettingError, match=f"--n must be an integer from {MIN_NETWORKS}"):
        choose_networks(design, 3)


def test_a_device_the_model_describes_is_recovered(design: Design) -> None:
    """A device whose factors follow the block features (e.g. a phone: 7x7 kernels and strided blocks dearer)."""
    truth = np.array([0.3, 0.1, 0.6, -0.2, 0.25, 0.4, 0.15, -0.1])  # a coefficient per FEATURES name
    assert len(truth) == len(FEATURES)

    def factor_of(block: object) -> float:
        return 2.0 * math.exp(float(block_features(block) @ truth))  # type: ignore[arg-type]

    archs = choose_networks(design, 20)
    fit = fit_scaling(design, archs, _device(design, factor_of, 0.3, 0.01, archs).tolist())
    assert fit.figures.within_10pct >= 0.95 and fit.figures.mape < 0.03, fit.cross_fitted_ms
    fresh = _fresh(40)
    truth_ms = _device(design, factor_of, 0.3, 0.0, fresh)
    errors = fit.predict(design, design.usage(fresh)) / truth_ms - 1
    assert np.mean(np.abs(errors) <= 0.10) >= 0.95 and np.mean(np.abs(errors)) < 0.03, errors
    # identifiable: each feature's effect, and the searchable blocks' common factor (the fixed blocks' factor is not:
    # every network has them, so their time and the offset trade off)
    assert np.asarray(fit.coefficients[1:]) == pytest.approx(truth[1:], abs=0.15)  # (shrunk a little by the ridge)
    assert math.exp(fit.log_scale + fit.coefficients[0]) == pytest.approx(2.0 * math.exp(truth[0]), rel=0.1)
    one_factor = fit.measured_ms[0] / float((design.usage(archs[:1]) @ design.values)[0])  # everything x one factor: worse
    plain = one_factor * (design.usage(fresh) @ design.values)
    assert np.mean(np.abs(plain / truth_ms - 1)) > 3 * np.mean(np.abs(errors))


def test_the_reported_error_is_what_fresh_networks_see_when_the_model_is_wrong(design: Design) -> None:
    """A device whose block times grow with their square (outside the model): the cross-fitted report must be of
    the size of the error on networks the fit never saw, not the fit's error on its own networks."""
    archs = choose_networks(design, 20)
    space = get_space(SPACE)

    def latency(arch_list: list[str]) -> np.ndarray:
        squares = {k: 40 * v**2 for k, v in zip(design.keys, design.values, strict=True)}
        return np.array(
            [sum(squares[b.key] for b in space.blocks(space.parse(a), width=WIDTH, resolution=RESOLUTION)) for a in arch_list]
        )

    fit = fit_scaling(design, archs, latency(archs).tolist())
    fresh = _fresh(60)
    fresh_mape = float(np.mean(np.abs(fit.predict(design, design.usage(fresh)) / latency(fresh) - 1)))
    in_sample = float(np.mean(np.abs(fit.predict(design, design.usage(archs)) / np.asarray(fit.measured_ms) - 1)))
    assert 0.5 < fit.figures.mape / fresh_mape < 2.0, (fit.figures.mape, fresh_mape, in_sample)
    with pytest.raises(SettingError, match=f"at least {MIN_NETWORKS}"):
        fit_scaling(design, archs[:3], latency(archs[:3]).tolist())


def test_a_bootstrapped_table_is_measured_fitted_and_read_like_any_other(tmp_path: Path) -> None:
    """End to end on this machine's ONNX Runtime: a source table measured at one setting (as another device's),
    8 networks measured for real at another, the new table written and read by LutPredictor."""
    from agents import AgentsConfig, MeasurementSpec
    from farm.bootstrap import bootstrap_table
    from farm.client import Farm
    from farm.errors import TableConflictError
    from farm.lut import LutPredictor, network_latencies
    from farm.scheduler import Task
    from farm.store import Store
    from farm.tables import build_tables, measure_tasks

    blocks = get_space(SPACE).all_blocks(width=WIDTH, resolution=64)
    spec = MeasurementSpec(warmup_runs=3, runs=7)
    with (
        Store(tmp_path / "t.db") as store,
        Farm.local(
            kinds=["ort-cpu"], config=AgentsConfig(adb=None), cache_dir=str(tmp_path / "cache"), executor="threads"
        ) as farm,
    ):
        other = MeasurementSpec(warmup_runs=2, runs=5)
        built = build_tables(farm, store, space=SPACE, width=WIDTH, resolutions=[64], kind="ort-cpu", spec=other)
        assert built.done == len(blocks)
        (source,) = store.tables(device="ort-cpu")
        outcome = bootstrap_table(farm, store, source=source, kind="ort-cpu", spec=spec, n=8)
        ((target, fit),) = outcome.fits.items()
        assert target.device == "ort-cpu" and target.spec_key == spec.key() and fit.n == 8
        assert len(store.rows(target, "block")) == len(blocks)  # every block the source has
        predictor = LutPredictor(store, target)
        assert predictor.calibration is not None and predictor.calibration.method.startswith("bootstrap")
        measured = network_latencies(store, target, statistic="mean")
        archs = list(outcome.archs)
        design = Design(LutPredictor(store, source).block_values(), space=SPACE, width=WIDTH, resolution=64)
        # the table predicts what the fit predicts: blocks times their factors, the offset as its calibration
        assert predictor.predict_ms(archs) == pytest.approx(fit.predict(design, design.usage(archs)).tolist(), rel=1e-9)
        assert set(measured) >= set(archs)
        reported = outcome.to_dict()
        assert reported["tables"][0]["n"] == 8 and reported["tables"][0]["cross_fitted"]["n"] == 8
        assert len(reported["networks"]) == 8 and reported["tables"][0]["label"] == target.label()
        again = bootstrap_table(farm, store, source=source, kind="ort-cpu", spec=spec, n=8)  # its own estimates: rewritten
        assert list(again.fits) == [target] and again.report.done == 0  # the networks are not measured twice
        store.delete_entries(target, "block", [blocks[0].key])  # one block measured for real: the device has a table
        task = Task(SPACE, WIDTH, 64, "block", blocks[0].key)
        measure_tasks(farm, store, [task], kind="ort-cpu", spec=spec, description="one block")
        with pytest.raises(TableConflictError, match="already holds measured blocks"):
            bootstrap_table(farm, store, source=source, kind="ort-cpu", spec=spec, n=8)


def test_the_bootstrap_command_then_a_full_build_measures_the_estimates(tmp_path: Path) -> None:
    """The commands a person runs: a table of one device, 'nag table bootstrap' of a new one into another store,
    a prediction from it, then 'nag table build' on the new store measuring the estimated blocks for real."""
    import json

    from farm.store import Store
    from tests.cli import one_line_error, run_nag

    (tmp_path / "agents.yaml").write_text("adb: null\n")
    env = {"NAG_AGENTS_CONFIG": str(tmp_path / "agents.yaml"), "NAG_CACHE_DIR": str(tmp_path / "cache")}
    farm = ["--resolution", "64", "--executor", "threads", "--warmup", "2", "--runs", "5"]
    source, new = str(tmp_path / "source.db"), str(tmp_path / "new.db")
    built = run_nag("table", "build", "--kind", "ort-cpu", "--db", source, "--reference-every", "0", *farm, env=env, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    boot = ["table", "bootstrap", "--from", "ort-cpu", "--from-db", source, "--to", "ort-cpu", "--db", new, *farm]
    done = run_nag(*boot, "--n", "8", "--json", env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert len(report["networks"]) == 8 and report["measured"] == 8 and report["failed"] == 0
    (table,) = report["tables"]
    assert table["n"] == 8 and table["cross_fitted"]["n"] == 8 and table["common_scale"] > 0
    assert table["table"]["device"] == "ort-cpu" and report["source"]["device"] == "ort-cpu"
    predicted = run_nag(
        "table", "predict", report["networks"][0], "--db", new, "--kind", "ort-cpu", "--resolution", "64", "--json", env=env
    )
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["calibrated"] is True
    with Store(new, create=False) as store:
        (key,) = store.tables()
        assert store.rows(key, "block") and not any(r.measured for r in store.rows(key, "block"))  # estimates
    rebuilt = run_nag("table", "build", "--kind", "ort-cpu", "--db", new, "--reference-every", "0", *farm, env=env, timeout=600)
    assert rebuilt.returncode == 0 and "estimated blocks: measuring them now" in rebuilt.stderr, rebuilt.stderr[-3000:]
    with Store(new, create=False) as store:
        blocks = store.rows(key, "block")
        assert blocks and all(r.measured for r in blocks) and len(store.rows(key, "network")) >= 8  # the networks stay
    one_line_error(run_nag(*boot, "--n", "3", env=env), "--n must be an integer from 6")
    one_line_error(
        run_nag(*boot[:2], "--from", "nosuch", "--from-db", source, "--to", "ort-cpu", "--db", new, *farm, env=env), "nosuch"
    )


def test_a_source_table_missing_a_block_is_refused_with_the_fix(design: Design) -> None:
    from farm.errors import MissingBlockError

    partial = Design(
        dict(list(zip(design.keys, design.values, strict=True))[:-20]), space=SPACE, width=WIDTH, resolution=RESOLUTION
    )
    with pytest.raises(MissingBlockError, match=r"source table lacks block .* 'nag table build'"):
        choose_networks(partial, 20)
