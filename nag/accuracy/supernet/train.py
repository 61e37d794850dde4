"""Progressive shrinking (OFA, Cai et al. 2020) with short schedules.

Phases run in order, each for a few epochs; every step samples ``subnets_per_step`` subnets from the
phase's choices and accumulates their gradients (OFA's ``dynamic_batch_size``). The default phases are
OFA's: the largest network; then elastic kernel (3/5/7, which trains the kernel transformation matrices);
then elastic depth (2-4); then elastic expand ratio (3/4/6), after sorting every layer's middle channels by
importance. With ``distill > 0`` a subnet also learns the soft labels of the largest network of the same
supernet, computed without gradient on the same batch (in-place distillation as in BigNAS; OFA uses a
separately trained teacher instead).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nag.accuracy.supernet.data import Data
from nag.accuracy.supernet.network import OFAMobileNetV3Supernet, largest_arch, sample_arch
from nag.errors import SettingError
from nag.space.ofa_mbv3 import DEPTH_CHOICES, EXPAND_CHOICES, KERNEL_CHOICES

__all__ = ["DEFAULT_PHASES", "Phase", "TrainConfig", "train_supernet"]


@dataclass(frozen=True)
class Phase:
    """One stage of progressive shrinking: which choices its sampled subnets draw from."""

    name: str  # shown in progress and logs
    epochs: float  # passes over the training set (fractions allowed)
    depths: tuple[int, ...] = (max(DEPTH_CHOICES),)  # stage depths sampled from
    kernels: tuple[int, ...] = (max(KERNEL_CHOICES),)  # kernel sizes sampled from
    expands: tuple[int, ...] = (max(EXPAND_CHOICES),)  # expand ratios sampled from
    lr_scale: float = 1.0  # this phase's peak learning rate = TrainConfig.lr * lr_scale
    sort_channels: int | None = None  # sort middle channels before the phase with this ``protected``; None: don't


DEFAULT_PHASES = (
    Phase("largest", 3.0),
    Phase("kernel", 2.0, kernels=KERNEL_CHOICES, lr_scale=0.5),
    Phase("depth", 2.0, depths=DEPTH_CHOICES, kernels=KERNEL_CHOICES, lr_scale=0.5),
    Phase("expand", 2.0, depths=DEPTH_CHOICES, kernels=KERNEL_CHOICES, expands=EXPAND_CHOICES, lr_scale=0.5, sort_channels=0),
)


@dataclass(frozen=True)
class TrainConfig:
    """A progressive-shrinking run."""

    phases: tuple[Phase, ...] = DEFAULT_PHASES  # in order
    width: float = 1.2  # supernet width multiplier (1.2 or 1.0)
    batch_size: int = 64  # images per step
    lr: float = 0.05  # peak SGD learning rate (Nesterov, momentum 0.9); cosine decay within each phase
    weight_decay: float = 3e-5  # as OFA
    subnets_per_step: int = 2  # sampled subnets whose gradients are summed per step (largest phase: 1)
    distill: float = 0.0  # weight of the distillation loss from the largest network; 0: off
    max_steps_per_epoch: int | None = None  # cap on steps per epoch (short test runs); None: the whole set
    seed: int = 0  # subnet sampling, batch order and initial weights
    device: str = "cpu"  # torch device
    channels_last: bool = True  # NHWC weights and batches: oneDNN's depthwise convolutions run ~1.7x faster on CPU

    def __post_init__(self) -> None:
        if not self.phases:
            raise SettingError("progressive shrinking needs at least one phase; e.g. DEFAULT_PHASES")
        for name, value in (("batch_size", self.batch_size), ("subnets_per_step", self.subnets_per_step)):
            if value < 1:
                raise SettingError(f"{name} must be at least 1, got {value}")
        if not (self.lr > 0 and self.distill >= 0):
            raise SettingError(f"lr must be > 0 and distill >= 0, got lr={self.lr}, distill={self.distill}")
        for phase in self.phases:
            if phase.epochs < 0:
                raise SettingError(f"phase {phase.name!r} has {phase.epochs} epochs; use 0 or more")


def train_supernet(
    data: Data,
    config: TrainConfig | None = None,
    *,
    supernet: OFAMobileNetV3Supernet | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> OFAMobileNetV3Supernet:
    """Train ``supernet`` (default: a fresh one with the data's classes) by progressive shrinking; returns it.

    The supernet is left in eval mode with its largest architecture active. Its batch-norm statistics are
    those of whatever subnets ran last: recalibrate before evaluating a subnet (see ``evaluate``).
    """
    from tqdm import tqdm

    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    if supernet is None:
        supernet = OFAMobileNetV3Supernet(width=config.width, num_classes=data.num_classes)
    elif supernet.num_classes != data.num_classes:
        raise SettingError(f"the supernet has {supernet.num_classes} classes, the data {data.num_classes}; they must agree")
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    supernet.to(config.device, memory_format=layout).train()  # type: ignore[call-overload]  # (torch accepts it; its stubs lack it)
    rng = random.Random(config.seed)
    n_train = len(data.train)  # type: ignore[arg-type]
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    for index, phase in enumerate(config.phases):
        if phase.sort_channels is not None:
            supernet.sort_channels(protected=phase.sort_channels)
        total = max(1, round(phase.epochs * steps_per_epoch)) if phase.epochs > 0 else 0
        optimizer = torch.optim.SGD(
            supernet.parameters(), lr=config.lr * phase.lr_scale, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total))
        single = (
            phase.depths == (max(DEPTH_CHOICES),)
            and phase.kernels == (max(KERNEL_CHOICES),)
            and phase.expands == (max(EXPAND_CHOICES),)
        )
        bar = tqdm(total=total, desc=f"phase {index + 1}/{len(config.phases)} {phase.name}", unit="step", disable=not progress)
        step, epoch, running = 0, 0, 0.0
        while step < total:
            loader = data.loader(
                "train", batch_size=config.batch_size, shuffle=True, seed=config.seed * 1000 + index * 100 + epoch
            )
            for batch, (images, labels) in enumerate(loader):
                if step >= total or batch >= steps_per_epoch:
                    break
                running = _step(
                    supernet,
                    images.to(config.device, memory_format=layout),
                    labels.to(config.device),
                    phase,
                    config,
                    rng,
                    single,
                    optimizer,
                )
                schedule.step()
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{running:.3f}")
            epoch += 1
        bar.close()
        if log is not None:
            log(f"phase {phase.name}: {total} steps, last loss {running:.4f}")
    supernet.set_active(largest_arch())
    return supernet.eval()


def _step(
    supernet: OFAMobileNetV3Supernet, images: torch.Tensor, labels: torch.Tensor, phase: Phase, config: TrainConfig,
    rng: random.Random, single: bool, optimizer: torch.optim.Optimizer,
) -> float:  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    soft: torch.Tensor | None = None
    if config.distill > 0 and not single:
        with torch.no_grad():
            supernet.set_active(largest_arch())
            soft = F.softmax(supernet(images), dim=1)
    count = 1 if single else config.subnets_per_step
    total = 0.0
    for _ in range(count):
        supernet.set_active(sample_arch(rng, depths=phase.depths, kernels=phase.kernels, expands=phase.expands))
        logits = supernet(images)
        loss = F.cross_entropy(logits, labels)
        if soft is not None:
            loss = loss + config.distill * torch.sum(-soft * F.log_softmax(logits, dim=1), dim=1).mean()
        loss.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(supernet.parameters(), 5.0)
    optimizer.step()
    return total / count
