"""``nag supernet train|eval``: register with ``register(subparsers)``; torch, Ray and the data load in handlers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nag.errors import SettingError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``supernet`` command group to an argparse subparsers object (``handler`` set per command)."""
    group = subparsers.add_parser("supernet", help="train an ofa-mbv3 supernet, and evaluate its subnets")
    commands = group.add_subparsers(dest="supernet_command", metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="progressive shrinking on an ImageNet-layout folder or the embedded digits")
    _add_data_options(train)
    train.add_argument("--out", required=True, help="checkpoint to write (OFA's state-dict layout)")
    train.add_argument("--width", type=float, default=1.2, choices=(1.0, 1.2), help="width multiplier (default 1.2)")
    train.add_argument(
        "--phase-epochs", default="3,2,2,2", help="epochs of the phases largest,kernel,depth,expand (default 3,2,2,2)"
    )
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate of the first phase")
    train.add_argument("--subnets-per-step", type=int, default=2)
    train.add_argument("--distill", type=float, default=0.0, help="weight of distillation from the largest network")
    train.add_argument("--max-steps-per-epoch", type=int, default=None)
    train.add_argument("--device", default="cpu")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("eval", help="top-1 of sampled subnets (batch-norm recalibrated), appended to a CSV")
    _add_data_options(evaluate)
    evaluate.add_argument("--checkpoint", required=True, help="supernet checkpoint (OFA's published file or 'train' output)")
    evaluate.add_argument("--n", type=int, required=True, help="number of uniformly sampled architectures")
    evaluate.add_argument("--out", required=True, help="CSV table arch,accuracy,n_val; rows already there are skipped")
    evaluate.add_argument("--calib-images", type=int, default=2000, help="training images for batch-norm recalibration")
    evaluate.add_argument("--max-val", type=int, default=None, help="evaluate on the first N validation images")
    evaluate.add_argument("--batch-size", type=int, default=200)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--ray", action="store_true", help="spread subnets over a local Ray (one worker per CPU)")
    evaluate.add_argument("--address", default=None, help="spread subnets over this Ray cluster (implies --ray)")
    evaluate.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per CPU or GPU)")
    evaluate.set_defaults(handler=_eval)


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="'digits' (embedded) or DIR with DIR/train/<class>/ and DIR/val/<class>/")
    parser.add_argument("--resolution", type=int, default=None, help="input pixels (default 32 for digits, 224 for a folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 is best on a busy machine)"
    )


def _data_spec(args: argparse.Namespace) -> Any:
    import torch

    from nag.accuracy.supernet.data import DIGITS, DataSpec

    if args.threads is not None:
        if args.threads < 1:
            raise SettingError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    resolution = args.resolution or (32 if args.data == DIGITS else 224)
    return DataSpec(source=args.data, resolution=resolution, seed=args.seed)


def _train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from nag.accuracy.supernet.data import load_data
    from nag.accuracy.supernet.network import save_supernet
    from nag.accuracy.supernet.train import DEFAULT_PHASES, TrainConfig, train_supernet

    try:
        epochs = [float(v) for v in args.phase_epochs.split(",")]
    except ValueError:
        raise SettingError(f"--phase-epochs must be 4 comma-separated numbers, got {args.phase_epochs!r}; e.g. 3,2,2,2") from None
    if len(epochs) != len(DEFAULT_PHASES):
        raise SettingError(f"--phase-epochs needs {len(DEFAULT_PHASES)} values (largest,kernel,depth,expand), got {len(epochs)}")
    spec = _data_spec(args)
    data = load_data(spec)
    config = TrainConfig(
        phases=tuple(replace(p, epochs=e) for p, e in zip(DEFAULT_PHASES, epochs, strict=True)), width=args.width,
        batch_size=args.batch_size, lr=args.lr, subnets_per_step=args.subnets_per_step, distill=args.distill,
        max_steps_per_epoch=args.max_steps_per_epoch, seed=args.seed, device=args.device,
    )  # fmt: skip
    supernet = train_supernet(data, config, log=lambda line: print(line, file=sys.stderr))
    save_supernet(supernet.cpu(), args.out, extra={"data": spec.source, "resolution": spec.resolution})
    print(f"wrote {args.out} (width {args.width}, {data.num_classes} classes, {spec.resolution} px)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from nag.accuracy.supernet.evaluation import EvalSettings, evaluate
    from nag.space.ofa_mbv3 import OFAMobileNetV3Space

    if args.n < 1:
        raise SettingError(f"--n must be at least 1, got {args.n}")
    archs = OFAMobileNetV3Space().sample_many(args.n, seed=args.seed)
    settings = EvalSettings(
        calib_images=args.calib_images, batch_size=args.batch_size, max_val=args.max_val, seed=args.seed, device=args.device
    )
    use_ray = args.ray or args.address is not None
    started = False
    if use_ray:
        import ray

        if not ray.is_initialized():
            from nag.ray_session import init_ray

            init_ray(args.address)
            started = True
    try:
        results = evaluate(args.checkpoint, archs, _data_spec(args), out=args.out, settings=settings, use_ray=use_ray,
                           num_workers=args.workers)  # fmt: skip
    finally:
        if started:
            ray.shutdown()
    mean = sum(a for a, _ in results.values()) / len(results)
    print(f"{len(results)} subnets in {args.out}; mean top-1 {mean:.4f}")
    return 0
