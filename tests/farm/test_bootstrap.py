"""A new device's table from a few networks: the choice of networks, the per-operator scaling and its honest error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm.bootstrap import MIN_NETWORKS, block_group, choose_networks, fit_scaling, group_sums
from nag.errors import SettingError
from nag.space import count_costs, get_space

SPACE, WIDTH, RESOLUTION = "ofa-mbv3", 1.2, 160


@pytest.fixture(scope="module")
def source() -> dict[str, float]:
    """A source table: each block's latency grows with its multiply-adds, with a per-block quirk."""
    rng = np.random.default_rng(0)
    space = get_space(SPACE)
    return {
        b.key: 0.02 + 2e-8 * count_costs([b]).madds * rng.uniform(0.7, 1.3)
        for b in space.all_blocks(width=WIDTH, resolution=RESOLUTION)
    }


def _new_device(
    source: dict[str, float], archs: list[str], factors: dict[str, float], offset: float, noise: float
) -> list[float]:
    """Whole-network latencies of a device that runs each operator kind ``factors[group]`` times the source."""
    rng = np.random.default_rng(1)
    space = get_space(SPACE)
    latencies = []
    for arch in archs:
        blocks = space.blocks(space.parse(arch), width=WIDTH, resolution=RESOLUTION)
        total = offset + sum(factors.get(block_group(b) or "fixed", 1.0) * source[b.key] for b in blocks)
        latencies.append(total * (1 + rng.normal(0, noise)))
    return latencies


def test_the_chosen_networks_spread_over_the_operator_kinds(source: dict[str, float]) -> None:
    chosen = choose_networks(source, 20, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    assert len(set(chosen)) == 20 and chosen == choose_networks(source, 20, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    space = get_space(SPACE)
    random = [space.format(a) for a in space.sample_many(20, seed=5)]
    _, picked, _ = group_sums(source, chosen, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    _, drawn, _ = group_sums(source, random, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    # informative: the chosen networks span a wider range of every operator kind's share than random ones
    assert (picked.max(0) - picked.min(0)).sum() > 1.2 * (drawn.max(0) - drawn.min(0)).sum()
    totals = picked.sum(1)
    assert totals[0] == totals.min() and totals[1] == totals.max()  # the cheapest and the dearest come first
    with pytest.raises(SettingError, match=f"--n must be an integer from {MIN_NETWORKS}"):
        choose_networks(source, 3, space=SPACE, width=WIDTH, resolution=RESOLUTION)


def test_a_device_that_scales_per_operator_kind_is_recovered(source: dict[str, float]) -> None:
    groups, _, _ = group_sums(source, [], space=SPACE, width=WIDTH, resolution=RESOLUTION)
    rng = np.random.default_rng(2)
    factors = {g: float(rng.uniform(1.5, 4.0)) for g in groups}  # e.g. a phone: depthwise 7x7 much dearer
    archs = choose_networks(source, 20, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    measured = _new_device(source, archs, {**factors, "fixed": 2.5}, offset=0.3, noise=0.01)
    groups, sums, fixed = group_sums(source, archs, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    fit = fit_scaling(groups, sums, fixed, measured)
    assert fit.figures.within_10pct >= 0.95 and fit.figures.mape < 0.03, fit.cross_fitted_ms
    # fresh networks the fit never saw, predicted from the source table and the fitted scales
    space = get_space(SPACE)
    fresh = [space.format(a) for a in space.sample_many(40, seed=9)]
    truth = np.asarray(_new_device(source, fresh, {**factors, "fixed": 2.5}, offset=0.3, noise=0.0))
    _, fresh_sums, fresh_fixed = group_sums(source, fresh, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    errors = fit.predict(fresh_sums, fresh_fixed) / truth - 1
    assert np.mean(np.abs(errors) <= 0.10) >= 0.95 and np.mean(np.abs(errors)) < 0.04, errors
    one_scale = sum(measured) / float((sums.sum(1) + fixed).sum())  # a single factor for everything: far worse
    assert np.mean(np.abs(one_scale * (fresh_sums.sum(1) + fresh_fixed) / truth - 1)) > 2 * np.mean(np.abs(errors))


def test_the_reported_error_is_honest_when_the_device_does_not_scale(source: dict[str, float]) -> None:
    """A device whose latency is not a per-kind scaling of the source (it grows with the square of each block's
    time): the cross-fitted error must show it rather than report a fit of the networks it was fitted on."""
    archs = choose_networks(source, 12, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    groups, sums, fixed = group_sums(source, archs, space=SPACE, width=WIDTH, resolution=RESOLUTION)
    space = get_space(SPACE)
    measured = [
        sum(40 * source[b.key] ** 2 for b in space.blocks(space.parse(a), width=WIDTH, resolution=RESOLUTION)) for a in archs
    ]
    fit = fit_scaling(groups, sums, fixed, measured)
    in_sample = np.abs(fit.predict(sums, fixed) / np.asarray(measured) - 1).mean()
    assert fit.figures.mape > in_sample  # left-out networks are predicted worse than fitted ones, and it says so
    with pytest.raises(SettingError, match=f"at least {MIN_NETWORKS}"):
        fit_scaling(groups, sums[:3], fixed[:3], measured[:3])


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
        _, sums, fixed = group_sums(LutPredictor(store, source).block_values(), archs, space=SPACE, width=WIDTH, resolution=64)
        # the table predicts what the fit predicts: blocks scaled per group, the offset as its calibration
        assert predictor.predict_ms(archs) == pytest.approx(fit.predict(sums, fixed).tolist(), rel=1e-9)
        assert set(measured) >= set(archs) and all(fit.scale_of(g) > 0 for g in (*fit.groups, None))
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
