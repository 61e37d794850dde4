"""Supernet training steps and subnet evaluation on CPU: channels-last (NHWC) against the default layout (NCHW).

    python benchmarks/supernet_speed.py [--repeats 8] [--threads 2]

Measures, in one run and interleaved, (1) one progressive-shrinking step of the ofa-mbv3 supernet
(width 1.2, digits at 32 px, batch 64: forward, backward and SGD update) for the largest subnet and for
random subnets; (2) the evaluation of one subnet as the demo does it (extract, batch-norm recalibration on
200 training images, top-1 on the 359 held-out digits). The baseline is NCHW in the same run; the table
gives medians and the NHWC/NCHW ratio, and checks that both layouts give the same top-1.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nag.accuracy.supernet import DataSpec, OFAMobileNetV3Supernet, largest_arch, load_data, sample_arch
from nag.accuracy.supernet.evaluation import EvalSettings, SubnetEvaluator


def _median_s(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_data(DataSpec(resolution=32))
    images, labels = next(iter(data.loader("train", batch_size=64, shuffle=True)))
    supernet = OFAMobileNetV3Supernet(width=1.2, num_classes=10)
    layouts = {"NCHW (baseline)": torch.contiguous_format, "NHWC (channels_last)": torch.channels_last}
    rng = random.Random(0)
    subnets = [sample_arch(rng) for _ in range(args.repeats + 1)]

    def train_step(layout: torch.memory_format, archs: list) -> Callable[[], None]:
        net = supernet.to(memory_format=layout).train()  # type: ignore[call-overload]
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
        batch = images.contiguous(memory_format=layout)
        queue = itertools.cycle(archs)

        def step() -> None:
            net.set_active(next(queue))
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(batch), labels).backward()
            optimizer.step()

        return step

    rows: dict[str, dict[str, float]] = {name: {} for name in layouts}
    accuracy: dict[str, list[float]] = {}
    for name, layout in layouts.items():  # interleaving by task, not layout, would retrain between layouts
        rows[name]["train step, largest (s)"] = _median_s(train_step(layout, [largest_arch()]), args.repeats)
        rows[name]["train step, random subnet (s)"] = _median_s(train_step(layout, subnets), args.repeats)
    supernet.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    for name, layout in layouts.items():
        settings = EvalSettings(calib_images=200, batch_size=500, channels_last=layout == torch.channels_last)
        evaluator = SubnetEvaluator(supernet, data, settings)
        queue = itertools.cycle(subnets)
        rows[name]["evaluate one subnet (s)"] = _median_s(
            lambda evaluator=evaluator, queue=queue: evaluator.evaluate(next(queue)), args.repeats
        )
        accuracy[name] = [evaluator.evaluate(a)[1] for a in subnets[:4]]

    baseline = rows["NCHW (baseline)"]
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}")
    print(f"{'':34}{'NCHW (s)':>10}{'NHWC (s)':>10}{'NHWC/NCHW':>11}")
    for task in baseline:
        nhwc = rows["NHWC (channels_last)"][task]
        print(f"{task:34}{baseline[task]:10.3f}{nhwc:10.3f}{nhwc / baseline[task]:10.2f}x")
    same = all(abs(a - b) <= 0.011 for a, b in zip(*accuracy.values(), strict=True))
    print(f"top-1 of 4 subnets, NCHW vs NHWC: {accuracy['NCHW (baseline)']} vs {accuracy['NHWC (channels_last)']} (same: {same})")


if __name__ == "__main__":
    main()
