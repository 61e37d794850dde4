"""Progressive shrinking on digits, subnet evaluation (in-process and on Ray), resumable tables, the source."""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nag.accuracy import AccuracySource
from nag.accuracy.supernet import OFAMobileNetV3Supernet, largest_arch, load_supernet, sample_arch, save_supernet, smallest_arch
from nag.accuracy.supernet.cli import register
from nag.accuracy.supernet.data import Data, DataSpec, load_data
from nag.accuracy.supernet.evaluation import EvalSettings, ResultsTable, evaluate, recalibrate_bn
from nag.accuracy.supernet.source import SupernetAccuracy
from nag.accuracy.supernet.train import DEFAULT_PHASES, TrainConfig, train_supernet
from nag.space.ofa_mbv3 import OFAMobileNetV3Space

SPEC = DataSpec(resolution=32)
SETTINGS = EvalSettings(calib_images=128, batch_size=64, max_val=200)
# A tiny progressive-shrinking schedule: steps of 32 images; the largest phase longest.
SCHEDULE = TrainConfig(
    phases=tuple(replace(p, epochs=e) for p, e in zip(DEFAULT_PHASES, (3, 1.5, 1.5, 1.5), strict=True)),
    width=1.0, batch_size=32, lr=0.1, max_steps_per_epoch=10, subnets_per_step=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def digits() -> Data:
    return load_data(SPEC)


@pytest.fixture(scope="module")
def trained(digits: Data, tmp_path_factory: pytest.TempPathFactory) -> tuple[OFAMobileNetV3Supernet, Path]:
    supernet = train_supernet(digits, SCHEDULE, progress=False)
    path = tmp_path_factory.mktemp("supernet") / "digits.pt"
    save_supernet(supernet, path)
    return supernet, path


def _archs(n: int, seed: int) -> list:
    rng = random.Random(seed)
    return [sample_arch(rng) for _ in range(n)]


def test_recalibration_sets_cumulative_batch_statistics() -> None:
    torch.manual_seed(0)
    net = OFAMobileNetV3Supernet(width=1.0, num_classes=10).extract(smallest_arch())
    batches = [torch.randn(8, 3, 32, 32) * 2 + 1 for _ in range(3)]
    assert recalibrate_bn(net, batches) == 24
    assert not net.training
    bn, conv = net.first_conv.bn, net.first_conv.conv
    with torch.no_grad():
        means = torch.stack([conv(b).mean(dim=(0, 2, 3)) for b in batches])
    assert torch.allclose(bn.running_mean, means.mean(dim=0), atol=1e-5)  # average of batch means, not an EMA
    assert bn.momentum == 0.1


def test_short_progressive_shrinking_learns_and_bigger_subnets_do_better(trained: tuple, digits: Data, tmp_path: Path) -> None:
    supernet, _ = trained
    space = OFAMobileNetV3Space()
    archs = [largest_arch(), smallest_arch(), *_archs(6, seed=1)]
    results = evaluate(supernet, archs, digits, out=tmp_path / "acc.csv", settings=SETTINGS, progress=False)
    accuracy = [results[str(a)][0] for a in archs]
    assert all(n_val == 200 for _, n_val in results.values())
    assert min(accuracy) > 0.3 and sum(accuracy) / len(accuracy) > 0.5, accuracy  # chance is 0.1
    by_size = sorted(zip(archs, accuracy, strict=True), key=lambda p: space.costs(p[0], width=1.0, resolution=32).madds)
    small, large = by_size[: len(by_size) // 2], by_size[len(by_size) // 2 :]
    assert sum(a for _, a in large) / len(large) > sum(a for _, a in small) / len(small) - 0.02, by_size


def test_channels_last_evaluation_and_training_compute_the_same(trained: tuple, digits: Data) -> None:
    supernet, _ = trained
    archs = _archs(3, seed=4)
    nchw = evaluate(supernet, archs, digits, settings=replace(SETTINGS, channels_last=False), progress=False)
    nhwc = evaluate(supernet, archs, digits, settings=replace(SETTINGS, channels_last=True), progress=False)
    assert nchw.keys() == nhwc.keys()
    for arch in nchw:  # a flipped prediction or two at most: the layouts sum in different orders
        assert nhwc[arch][0] == pytest.approx(nchw[arch][0], abs=0.011)
    one_step = replace(SCHEDULE, phases=(replace(DEFAULT_PHASES[0], epochs=1),), max_steps_per_epoch=1)
    weights = [
        train_supernet(digits, replace(one_step, channels_last=layout), progress=False).state_dict()["classifier.linear.weight"]
        for layout in (False, True)
    ]
    assert torch.allclose(weights[0], weights[1], atol=1e-4)


def test_evaluation_resumes_from_its_table(trained: tuple, digits: Data, tmp_path: Path) -> None:
    supernet, _ = trained
    out = tmp_path / "acc.csv"
    first, more = _archs(2, seed=7), _archs(1, seed=8)
    done: list[str] = []
    evaluate(supernet, first, digits, out=out, settings=SETTINGS, progress=False, on_result=lambda a, *_: done.append(a))
    assert done == [str(a) for a in first]
    with open(out, "a") as handle:  # a write killed halfway
        handle.write('"2,2,2')
    done.clear()
    results = evaluate(
        supernet, first + more, digits, out=out, settings=SETTINGS, progress=False, on_result=lambda a, *_: done.append(a)
    )
    assert done == [str(more[0])]
    table = ResultsTable(out).read()
    assert set(table) == {str(a) for a in first + more} == set(results)
    assert out.read_text().splitlines()[0] == "arch,accuracy,n_val"


def test_ray_workers_give_the_in_process_accuracies(trained: tuple, tmp_path: Path) -> None:
    import ray

    _, path = trained
    archs = _archs(3, seed=11)
    local = evaluate(path, archs, SPEC, settings=SETTINGS, progress=False)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(_node_ip_address="127.0.0.2", include_dashboard=False, num_cpus=2)
    try:
        remote = evaluate(path, archs, SPEC, out=tmp_path / "ray.csv", settings=SETTINGS, use_ray=True, progress=False)
    finally:
        ray.shutdown()
    assert set(remote) == set(local)
    for arch, (accuracy, n_val) in local.items():
        assert n_val == remote[arch][1] and abs(accuracy - remote[arch][0]) <= 1.5 / n_val  # thread count may flip a tie
    assert set(ResultsTable(tmp_path / "ray.csv").read()) == set(local)


def test_supernet_accuracy_source_caches(trained: tuple, tmp_path: Path) -> None:
    _, path = trained
    cache = tmp_path / "cache.csv"
    source = SupernetAccuracy(path, SPEC, settings=SETTINGS, cache=cache)
    assert isinstance(source, AccuracySource) and source.space == "ofa-mbv3"
    archs = _archs(2, seed=3)
    values = source.accuracy([str(archs[0]), archs[1], str(archs[0])])
    assert values[0] == values[2] and all(0.0 <= v <= 1.0 for v in values)
    # A new source over the same cache answers without loading anything (the checkpoint no longer exists).
    reborn = SupernetAccuracy(tmp_path / "gone.pt", SPEC, settings=SETTINGS, cache=cache)
    assert reborn.accuracy([archs[1], archs[0]]) == pytest.approx([values[1], values[0]], abs=1e-6)


def test_cli_train_and_eval(tmp_path: Path, trained: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = trained
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    ckpt = tmp_path / "cli.pt"
    args = parser.parse_args(
        ["supernet", "train", "--data", "digits", "--out", str(ckpt), "--width", "1.0", "--phase-epochs", "1,0,0,1",
         "--max-steps-per-epoch", "1", "--batch-size", "16"]
    )  # fmt: skip
    assert args.handler(args) == 0
    assert load_supernet(ckpt).num_classes == 10
    table = tmp_path / "t.csv"
    args = parser.parse_args(
        ["supernet", "eval", "--checkpoint", str(path), "--data", "digits", "--n", "2", "--out", str(table),
         "--calib-images", "64", "--max-val", "100", "--threads", "1"]
    )  # fmt: skip
    assert args.handler(args) == 0
    assert len(ResultsTable(table).read()) == 2
    assert "2 subnets in" in capsys.readouterr().out


def test_cli_module_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, nag.accuracy.supernet.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
