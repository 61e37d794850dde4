"""Generation without torch: a run directory's ``inference.npz`` gives the answers its torch networks give,
all budgets are sampled in one pass with each budget's own answer, ``nag generate`` imports neither torch nor
Ray, older directories still load (through torch) and upgrade, and a damaged file is refused by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nag.accuracy.fitted import FittedAccuracyPredictor
from nag.data import ArchTable
from nag.search.api import generate
from nag.search.budgets import BudgetPlacement
from nag.search.config import SearchConfig
from nag.search.inference import _rng, infer
from nag.search.layout import StagedLayout
from nag.search.model import SearchModel, new_evaluator, new_generator, new_surrogate
from nag.search.numpy_model import INFERENCE_FORMAT, expected_shapes
from nag.search.rundir import (
    INFERENCE_FILE,
    LATENCY_KINDS,
    RunDirError,
    load_inference,
    load_run,
    read_arrays,
    upgrade_run,
)
from nag.space import get_space

SPACE = get_space("ofa-mbv3")
LAYOUT = StagedLayout.for_space(SPACE)
# below the trained range (several rounds), interpolated, a trained budget's neighbourhood, above the range
BUDGETS = [20.0, 31.5, 38.0, 44.25, 60.0]
HEAVY = ("torch", "ray", "onnxruntime")


def _answers(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in answer.items() if k != "time_ms"} for answer in found]


def _old(run: Path, where: Path) -> Path:
    """A copy of ``run`` as a nag from before inference.npz wrote it."""
    copy = Path(shutil.copytree(run, where))
    (copy / INFERENCE_FILE).unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"].remove(INFERENCE_FILE)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def nag(*args: str | Path, probe: str = "") -> subprocess.CompletedProcess[str]:
    """``nag ARGS`` in a new interpreter; ``probe`` runs first (e.g. to hide a module)."""
    code = f"import sys\n{probe}\nfrom nag.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fitted(table: ArchTable) -> FittedAccuracyPredictor:
    assert table.accuracy is not None
    return FittedAccuracyPredictor.fit(table.archs, table.accuracy)


def _torch_scores(model: SearchModel, encodings: np.ndarray, placement: BudgetPlacement) -> tuple[np.ndarray, np.ndarray]:
    """The torch surrogate's estimates and the torch evaluator's scores of ``encodings`` under ``placement``."""
    assert model.evaluator is not None
    with torch.no_grad():
        inputs = torch.from_numpy(encodings)
        embedding = model.evaluator.budget_embedding.mix([placement]).expand(len(encodings), -1)
        return model.surrogate(inputs).numpy(), model.evaluator.score(inputs, embedding).numpy()


@pytest.mark.parametrize("select_by", ["surrogate", "evaluator", "source"])
def test_the_numpy_answers_are_what_the_torch_files_say(
    select_by: str, trained_run: Path, fitted: FittedAccuracyPredictor
) -> None:
    """Each answer from ``inference.npz`` checked against the run's torch networks (the .pt files, run by torch)
    and latency.json's predictor: the candidates it was picked from were drawn with the torch generator's
    probabilities, its accuracy, score and latency are theirs, and it is their best feasible candidate."""
    model, _ = load_run(trained_run)
    frozen = load_inference(trained_run)
    candidates = frozen.config.inference.candidates
    source = fitted if select_by == "source" else None
    for seed in (0, 5):
        answers = generate(trained_run, BUDGETS, seed=seed, select_by=select_by, accuracy=source)
        for answer in answers:
            placement = frozen.budgets.place(answer.budget_ms)
            # the draws inference made for this budget: its stream, one round after another
            block = np.repeat(frozen.policy.embed([placement]), candidates, axis=0)
            rng = _rng(seed, answer.budget_ms)
            raw = np.concatenate([frozen.policy.sample_raw(block, rng) for _ in range(answer.rounds)])
            with torch.no_grad():
                embedding = model.generator.budget_embedding.mix([placement]).expand(len(raw), -1)
                log_prob = model.generator(embedding, torch.from_numpy(raw)).log_prob.numpy()
            ours = frozen.policy.log_prob(np.tile(block, (answer.rounds, 1)), raw)
            np.testing.assert_allclose(ours, log_prob, atol=1e-3, rtol=1e-5)
            # the answer's own figures
            chosen = LAYOUT.archs_to_actions([SPACE.parse(answer.arch)])
            estimate, score = _torch_scores(model, LAYOUT.encode_actions_np(chosen), placement)
            accuracy = fitted.accuracy([answer.arch])[0] if source is not None else estimate[0]
            assert answer.accuracy == pytest.approx(accuracy, rel=1e-5)
            assert answer.score == pytest.approx(score[0], rel=1e-5, abs=1e-5)
            assert answer.latency_ms == pytest.approx(model.latency.predict_ms([answer.arch])[0], rel=1e-9)
            assert answer.feasible == (answer.latency_ms <= answer.budget_ms)
            # the pick among the distinct draws, as the torch networks rank them
            pool = np.unique(LAYOUT.canonical_actions(raw), axis=0)
            latency = np.asarray(model.latency.predict_ms(LAYOUT.actions_to_archs(SPACE, pool)))
            feasible = pool[latency <= answer.budget_ms]
            assert (answer.distinct_candidates, answer.feasible_candidates) == (len(pool), len(feasible))
            if not answer.feasible:
                assert answer.latency_ms == pytest.approx(latency.min(), rel=1e-9)
            elif source is None:
                ranked = _torch_scores(model, LAYOUT.encode_actions_np(feasible), placement)[select_by == "evaluator"]
                picked = (estimate if select_by == "surrogate" else score)[0]
                assert picked == pytest.approx(ranked.max(), rel=1e-5, abs=1e-6)
        assert {a.selected_by for a in answers} == {select_by}
    if source is not None:
        assert any(a.refine_steps for a in answers)  # the climb under the source ran


def test_the_numpy_networks_compute_what_the_torch_modules_compute(trained_run: Path) -> None:
    model, _ = load_run(trained_run)
    stored, expected = read_arrays(trained_run / INFERENCE_FILE), model.inference_arrays()
    assert stored.keys() == expected.keys() and all(np.array_equal(stored[k], expected[k]) for k in stored)
    frozen = load_inference(trained_run)
    encodings = LAYOUT.encode_actions_np(LAYOUT.archs_to_actions(SPACE.sample_many(500, seed=2)))
    assert frozen.evaluator is not None
    for budget in (31.5, 44.0):
        placement = model.budgets.place(budget)
        estimates, scores = _torch_scores(model, encodings, placement)
        np.testing.assert_allclose(frozen.surrogate(encodings), estimates, rtol=1e-6)
        np.testing.assert_allclose(frozen.evaluator.score(encodings, placement), scores, rtol=1e-5, atol=1e-5)


def test_all_budgets_in_one_pass_give_each_budget_its_own_answer(trained_run: Path) -> None:
    frozen = load_inference(trained_run)
    budgets = [*BUDGETS, 26.0, 33.3, 41.0, 47.5, 52.0, 1e308]
    for candidates in (100, 7):
        together = infer(frozen, budgets, seed=3, candidates=candidates)
        alone = [infer(frozen, [b], seed=3, candidates=candidates)[0] for b in budgets]
        assert _answers([g.to_dict() for g in together]) == _answers([g.to_dict() for g in alone])
    assert max(g.rounds for g in together) > 1  # a budget that needed more rounds than the batched first one
    # the policy itself: blocks of any size, a single row among them, each with its own stream
    policy = frozen.policy
    blocks = [
        np.repeat(policy.embed([frozen.budgets.place(b)]), n, axis=0) for b, n in ((30.0, 1), (40.0, 2), (50.0, 100), (35.5, 37))
    ]
    batched = policy.sample_blocks(blocks, [np.random.default_rng(i) for i in range(len(blocks))])
    for index, block in enumerate(blocks):
        assert np.array_equal(batched[index], policy.sample(block, np.random.default_rng(index)))


def test_the_numpy_shapes_are_the_networks_shapes() -> None:
    for config in (SearchConfig(), SearchConfig().replace(num_budgets=3, generator__budget_input="first", surrogate__hidden=32)):
        found = {f"generator.{k}": tuple(v.shape) for k, v in new_generator(LAYOUT, config, seed=0).state_dict().items()}
        found |= {f"evaluator.{k}": tuple(v.shape) for k, v in new_evaluator(LAYOUT, config, seed=0).state_dict().items()}
        found |= {f"surrogate.{k}": tuple(v.shape) for k, v in new_surrogate(LAYOUT, config, seed=0).state_dict().items()}
        assert found == expected_shapes(LAYOUT, config)


def _probe_modules(run: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``nag generate`` in a new interpreter, and what it imported and which of the run's files it opened how often
    (the last line of stderr)."""
    code = (
        "import collections, json, os, sys\nopened = collections.Counter()\n"
        "def seen(event, args):\n"
        "    if event == 'open' and isinstance(args[0], (str, os.PathLike)) and os.path.dirname(args[0]) == sys.argv[3]:\n"
        "        opened[os.path.basename(args[0])] += 1\n"
        "sys.addaudithook(seen)\nfrom nag.cli import main\ncode = main(sys.argv[1:])\n"
        "dynast = sys.modules.get('nag.accuracy.dynast')\n"
        f"print(json.dumps({{'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules), 'opened': opened, "
        "'dynast_fits': dynast.dynast_source.cache_info().currsize if dynast else 0}), file=sys.stderr)\nsys.exit(code)"
    )
    argv = ["generate", "--run", str(run), "--json", *args]
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    return result, json.loads(result.stderr.strip().splitlines()[-1])


def test_generate_imports_neither_torch_nor_ray(trained_run: Path, source_run: Path) -> None:
    budgets = [a for b in ("30", "35.5", "41", "50") for a in ("--budget", b)]
    result, seen = _probe_modules(trained_run, *budgets, "--select-by", "evaluator")
    assert result.returncode == 0 and len(json.loads(result.stdout)) == 4 and seen["heavy"] == [], result.stderr[-2000:]
    # selected by the stored DyNAS-T source and refined under it, from the run's stored fit (not fitted again)
    result, seen = _probe_modules(source_run, *budgets)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout)
    assert {a["selected_by"] for a in answers} == {"source"} and any(a["refine_steps"] for a in answers)
    assert (seen["heavy"], seen["dynast_fits"]) == ([], 0)


def test_generate_reads_each_file_it_needs_once(trained_run: Path, source_run: Path) -> None:
    """The run's settings, budgets, latency predictor and networks, once each; not metrics.json (nothing in it is
    needed) nor the torch files; with a stored source, its spec and its fit."""
    needed = {name: 1 for name in ("manifest.json", "config.json", "budgets.json", "latency.json", INFERENCE_FILE)}
    result, seen = _probe_modules(trained_run, "--budget", "35")
    assert result.returncode == 0 and seen["opened"] == needed, result.stderr[-2000:]
    result, seen = _probe_modules(source_run, "--budget", "35")
    assert result.returncode == 0 and seen["opened"] == {**needed, "accuracy.json": 1, "accuracy.npz": 1}, result.stderr[-2000:]


def test_the_stored_fit_is_the_fit(source_run: Path) -> None:
    """Answers from the run's accuracy.npz equal those of the source fitted afresh (--accuracy dynast, no stored fit)."""
    budgets = [a for b in ("30", "41") for a in ("--budget", b)]
    stored, _ = _probe_modules(source_run, *budgets)
    fresh_run = Path(shutil.copytree(source_run, source_run.parent / "fresh"))
    (fresh_run / "accuracy.npz").unlink()
    fresh, seen = _probe_modules(fresh_run, *budgets)
    assert seen["dynast_fits"] == 1 and seen["heavy"] == []
    assert _answers(json.loads(stored.stdout)) == _answers(json.loads(fresh.stdout))


def test_the_generate_path_imports_neither_torch_nor_ray() -> None:
    """Every latency predictor a run directory may hold and every fitted or table accuracy source loads without them."""
    modules = sorted({target.split(":")[0] for target in LATENCY_KINDS.values()})
    modules += ["nag.search.api", "nag.search.rundir", "nag.accuracy.registry", "nag.accuracy.fitted", "nag.accuracy.dynast"]
    modules += ["nag.accuracy.table", "nag.cli.search"]
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]


def test_an_older_run_directory_loads_through_torch_and_upgrades(trained_run: Path, tmp_path: Path) -> None:
    old = _old(trained_run, tmp_path / "old")
    before = nag("generate", "--run", old, "--budget", "35", "--budget", "44", "--json")
    assert before.returncode == 0 and f"'nag upgrade-run {old}' adds it" in before.stderr, before.stderr[-2000:]
    hidden = nag("generate", "--run", old, "--budget", "35", probe="sys.modules['torch'] = None")  # torch not installed
    assert hidden.returncode == 2 and hidden.stdout == "", hidden.stderr
    assert hidden.stderr.count("\n") == 2 and "install torch, or run 'nag upgrade-run" in hidden.stderr.splitlines()[-1]
    upgraded = nag("upgrade-run", old)
    assert upgraded.returncode == 0 and "wrote inference.npz" in upgraded.stdout
    after = nag("generate", "--run", old, "--budget", "35", "--budget", "44", "--json", probe="sys.modules['torch'] = None")
    assert after.returncode == 0 and after.stderr == "", after.stderr
    assert _answers(json.loads(after.stdout)) == _answers(json.loads(before.stdout))
    assert "nothing to do" in nag("upgrade-run", old).stdout


def test_an_inference_file_of_the_first_format_is_written_again_by_upgrade(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "format1"
    shutil.copytree(trained_run, run)
    _rewrite(run, {"format": np.asarray(1), "latency_form.knots": None})  # as nag before the knots wrote it
    assert load_inference(run) is not None  # still read
    assert upgrade_run(run)  # written again, at this version's format
    assert int(read_arrays(run / INFERENCE_FILE)["format"]) == INFERENCE_FORMAT
    budgets = [35.0, 44.0]
    assert [g.arch for g in generate(run, budgets)] == [g.arch for g in generate(trained_run, budgets)]
    assert not upgrade_run(run)  # nothing left to do


def _rewrite(run: Path, change: dict[str, Any]) -> None:
    arrays = read_arrays(run / INFERENCE_FILE)
    arrays.update(change)
    np.savez(run / INFERENCE_FILE, **{k: v for k, v in arrays.items() if v is not None})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"surrogate.net.0.bias": None}, r"entries missing: \['surrogate.net.0.bias'\]"),
        ({"extra": np.zeros(3)}, r"unexpected: \['extra'\]"),
        ({"generator.head_bias": np.zeros((2, 2), dtype=np.float32)}, r"generator.head_bias is float32\[2, 2\], expected"),
        ({"evaluator.fc2.bias": np.full(128, np.nan, dtype=np.float32)}, "evaluator.fc2.bias holds values that are not finite"),
        ({"surrogate.mean": np.asarray(50.0, dtype=np.float32)}, "must be accuracy fractions"),
        ({"format": np.asarray(99)}, "format is 99; this version reads 1, 2"),
        ({"latency_form.costs": None}, "latency_form needs a constant"),
    ],
)
def test_a_damaged_inference_file_is_refused_by_name(
    trained_run: Path, tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    _rewrite(run, change)
    with pytest.raises(RunDirError, match=rf"inference\.npz is damaged \(.*{expected}"):
        load_inference(run)


def test_a_latency_form_that_disagrees_with_latency_json_is_refused(trained_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained_run, tmp_path / "run"))
    _rewrite(run, {"latency_form.constant": read_arrays(run / INFERENCE_FILE)["latency_form.constant"] + 0.5})
    with pytest.raises(RunDirError, match=r"inference\.npz's latency form and .*latency\.json's predictor disagree"):
        load_inference(run)
    (run / INFERENCE_FILE).write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(RunDirError, match=r"cannot read .*inference\.npz: BadZipFile"):
        load_inference(run)
