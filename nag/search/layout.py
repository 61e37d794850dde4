"""The decision sequence of a MobileNet-like ("staged") search space, read from the space's choices.

A staged space has ``num_stages`` stages of ``slots_per_stage`` layer slots; each stage picks a depth from
``depth_choices`` and uses its first ``depth`` slots; each used slot picks an expand ratio from
``expand_choices`` and a kernel from ``kernel_choices``. Its architecture objects expose ``depths``,
``kernels`` and ``expands`` (unused slots 0), and ``space.parse`` accepts OFA's dict form
``{"d": [...], "ks": [...], "e": [...]}``. ``ofa-mbv3`` is one; any space with those class attributes works.

The generator's decisions, in order (``T = num_stages * (1 + 2 * slots_per_stage)`` steps, 45 for ofa-mbv3)::

    for each stage:   depth,  then for each slot:  expand ratio, kernel

An architecture as *actions* is an integer array ``(n, T)`` of choice indices; a slot decision past its
stage's depth is *inactive* (its value is ignored; :func:`StagedLayout.archs_to_actions` writes 0 there).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from nag.errors import SettingError
from nag.space import SearchSpace, staged

if TYPE_CHECKING:
    import torch

__all__ = ["DecisionKind", "StagedLayout"]

DecisionKind = Literal["depth", "expand", "kernel"]


@dataclass(frozen=True)
class StagedLayout:
    """The choices of a staged space and the order in which the generator decides them."""

    space_name: str  # registry name of the space, e.g. "ofa-mbv3"
    depth_choices: tuple[int, ...]  # allowed stage depths, ascending
    kernel_choices: tuple[int, ...]  # allowed kernel sizes
    expand_choices: tuple[int, ...]  # allowed expand ratios
    num_stages: int  # searchable stages
    slots_per_stage: int  # layer slots per stage (>= the largest depth)
    fast_encoding: bool  # True when :meth:`encode_actions` reproduces ``space.encode`` exactly

    @classmethod
    def for_space(cls, space: SearchSpace[Any]) -> StagedLayout:
        """Read the layout from ``space``'s class attributes; raise :class:`SettingError` if it is not staged."""
        stages = staged(space, "the PNAG generator")
        layout = cls(
            space_name=space.name,
            depth_choices=tuple(int(v) for v in stages.depth_choices),
            kernel_choices=tuple(int(v) for v in stages.kernel_choices),
            expand_choices=tuple(int(v) for v in stages.expand_choices),
            num_stages=int(stages.num_stages),
            slots_per_stage=int(stages.slots_per_stage),
            fast_encoding=False,
        )
        if max(layout.depth_choices) > layout.slots_per_stage:
            raise SettingError(
                f"space {space.name!r}: largest depth {max(layout.depth_choices)} exceeds {layout.slots_per_stage} slots per stage"
            )
        return layout._with_encoding_check(space)

    def _with_encoding_check(self, space: SearchSpace[Any]) -> StagedLayout:
        """Compare :meth:`encode_actions` with ``space.encode`` on a few samples; use the fast path only if equal."""
        archs = [space.sample(random.Random(seed)) for seed in range(16)]
        fast = StagedLayout(**{**self.__dict__, "fast_encoding": True})
        if space.encoding_size != fast.encoding_size:
            return self
        reference = np.asarray([space.encode(a) for a in archs], dtype=np.float32)
        encoded = fast.encode_actions_np(fast.archs_to_actions(archs))
        return fast if np.array_equal(reference, encoded) else self

    # -- the decision sequence -------------------------------------------------------------------------
    @property
    def num_slots(self) -> int:
        return self.num_stages * self.slots_per_stage

    @property
    def num_steps(self) -> int:
        return self.num_stages * (1 + 2 * self.slots_per_stage)

    @property
    def encoding_size(self) -> int:
        return self.num_slots * (len(self.kernel_choices) + len(self.expand_choices))

    def steps(self) -> list[tuple[DecisionKind, int, int]]:
        """``(kind, stage, layer)`` per decision step; ``layer`` is -1 for a depth step."""
        found: list[tuple[DecisionKind, int, int]] = []
        for stage in range(self.num_stages):
            found.append(("depth", stage, -1))
            for layer in range(self.slots_per_stage):
                found += [("expand", stage, layer), ("kernel", stage, layer)]
        return found

    @cached_property
    def depth_steps(self) -> np.ndarray:
        """``(num_stages,)`` step index of each stage's depth decision."""
        return np.asarray([self.depth_step(s) for s in range(self.num_stages)])

    @cached_property
    def kernel_steps(self) -> np.ndarray:
        """``(num_slots,)`` step index of each slot's kernel decision, slots in stage-major order."""
        return np.asarray(
            [self.slot_step(s, layer, "kernel") for s in range(self.num_stages) for layer in range(self.slots_per_stage)]
        )

    @cached_property
    def expand_steps(self) -> np.ndarray:
        """``(num_slots,)`` step index of each slot's expand decision, slots in stage-major order."""
        return np.asarray(
            [self.slot_step(s, layer, "expand") for s in range(self.num_stages) for layer in range(self.slots_per_stage)]
        )

    # -- the generator's tokens: one per choice of each decision kind, then a "skip" token --------------
    @cached_property
    def choice_counts(self) -> np.ndarray:
        """``(T,)`` number of choices of each step's decision."""
        return np.asarray([len(self.choices(kind)) for kind, _, _ in self.steps()], dtype=np.int64)

    @cached_property
    def token_offsets(self) -> np.ndarray:
        """``(T,)`` token index of each step's first choice (tokens of a kind are contiguous: depths, expands, kernels)."""
        first = {"depth": 0, "expand": len(self.depth_choices), "kernel": len(self.depth_choices) + len(self.expand_choices)}
        return np.asarray([first[kind] for kind, _, _ in self.steps()], dtype=np.int64)

    @property
    def skip_token(self) -> int:
        """The token fed after an unused slot (past its stage's depth); the last of ``skip_token + 1`` tokens."""
        return len(self.depth_choices) + len(self.expand_choices) + len(self.kernel_choices)

    def slot_used(self, actions: np.ndarray) -> np.ndarray:
        """``(n, num_slots)`` bool: which slots the action rows use (inside their stage's depth)."""
        depths = np.asarray(self.depth_choices)[actions[:, self.depth_steps]]
        return depths.repeat(self.slots_per_stage, axis=1) > self._slot_layers

    @cached_property
    def _slot_layers(self) -> np.ndarray:
        """``(num_slots,)`` each slot's layer index within its stage."""
        return np.tile(np.arange(self.slots_per_stage), self.num_stages)

    def choices(self, kind: DecisionKind) -> tuple[int, ...]:
        return {"depth": self.depth_choices, "expand": self.expand_choices, "kernel": self.kernel_choices}[kind]

    def depth_step(self, stage: int) -> int:
        return stage * (1 + 2 * self.slots_per_stage)

    def slot_step(self, stage: int, layer: int, kind: DecisionKind) -> int:
        return self.depth_step(stage) + 1 + 2 * layer + (0 if kind == "expand" else 1)

    # -- conversions ---------------------------------------------------------------------------------
    def archs_to_actions(self, archs: Sequence[Any]) -> np.ndarray:
        """Parsed architectures as an ``(n, T)`` int64 action array (inactive steps 0)."""
        actions = np.zeros((len(archs), self.num_steps), dtype=np.int64)
        depth_index = {v: i for i, v in enumerate(self.depth_choices)}
        kernel_index = {v: i for i, v in enumerate(self.kernel_choices)}
        expand_index = {v: i for i, v in enumerate(self.expand_choices)}
        for row, arch in enumerate(archs):
            for stage, depth in enumerate(arch.depths):
                actions[row, self.depth_step(stage)] = depth_index[depth]
                for layer in range(depth):
                    slot = stage * self.slots_per_stage + layer
                    actions[row, self.slot_step(stage, layer, "expand")] = expand_index[arch.expands[slot]]
                    actions[row, self.slot_step(stage, layer, "kernel")] = kernel_index[arch.kernels[slot]]
        return actions

    def active_mask(self, actions: np.ndarray) -> np.ndarray:
        """``(n, T)`` bool: which decisions are used (every depth step; slot steps inside the depth)."""
        used = self.slot_used(actions)
        mask = np.ones(actions.shape, dtype=bool)
        mask[:, self.kernel_steps] = used
        mask[:, self.expand_steps] = used
        return mask

    def canonical_actions(self, actions: np.ndarray) -> np.ndarray:
        """``actions`` with inactive steps zeroed, so that equal architectures have equal rows."""
        return np.where(self.active_mask(actions), actions, 0)

    def actions_to_dicts(self, actions: np.ndarray) -> list[dict[str, list[int]]]:
        """OFA dict form (``d``, ``ks``, ``e``; unused slots 0) of each row."""
        used = self.slot_used(actions)
        depths = np.asarray(self.depth_choices)[actions[:, self.depth_steps]]
        kernels = np.where(used, np.asarray(self.kernel_choices)[actions[:, self.kernel_steps]], 0)
        expands = np.where(used, np.asarray(self.expand_choices)[actions[:, self.expand_steps]], 0)
        return [{"d": d.tolist(), "ks": k.tolist(), "e": e.tolist()} for d, k, e in zip(depths, kernels, expands, strict=True)]

    def actions_to_archs(self, space: SearchSpace[Any], actions: np.ndarray) -> list[Any]:
        """Validated architecture objects of ``space``, one per row."""
        return [space.parse(value) for value in self.actions_to_dicts(actions)]

    def encode_actions_np(self, actions: np.ndarray) -> np.ndarray:
        """``(n, encoding_size)`` float32 one-hot encoding of action rows: kernels per slot, then expands per slot.

        Equals ``space.encode`` when :attr:`fast_encoding` is True (checked on construction).
        """
        actions = np.asarray(actions, dtype=np.int64)
        used = self.slot_used(actions)
        n, n_k, n_e = actions.shape[0], len(self.kernel_choices), len(self.expand_choices)
        out = np.zeros((n, self.encoding_size), dtype=np.float32)
        slot_ids = np.arange(self.num_slots)
        rows = np.arange(n)[:, None]
        out[rows, slot_ids * n_k + actions[:, self.kernel_steps]] = used
        out[rows, self.num_slots * n_k + slot_ids * n_e + actions[:, self.expand_steps]] = used
        return out

    def encode_actions(self, actions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """:meth:`encode_actions_np` as a torch tensor."""
        import torch

        return torch.from_numpy(self.encode_actions_np(np.asarray(actions)))

    def encode_archs(self, space: SearchSpace[Any], archs: Sequence[Any]) -> torch.Tensor:
        """Encoding of parsed architectures: the fast path when it is exact, else ``space.encode`` row by row."""
        import torch

        if self.fast_encoding:
            return self.encode_actions(self.archs_to_actions(archs))
        return torch.tensor([space.encode(a) for a in archs], dtype=torch.float32)

    def encode_any_np(self, space: SearchSpace[Any], actions: np.ndarray) -> np.ndarray:
        """``(n, space.encoding_size)`` float32 encoding of action rows, decoding them through ``space`` when the
        fast path is not exact."""
        if self.fast_encoding:
            return self.encode_actions_np(actions)
        encoded = [space.encode(a) for a in self.actions_to_archs(space, actions)]
        return np.asarray(encoded, dtype=np.float32).reshape(len(encoded), space.encoding_size)

    def encode_any(self, space: SearchSpace[Any], actions: np.ndarray) -> torch.Tensor:
        """:meth:`encode_any_np` as a torch tensor."""
        import torch

        return torch.from_numpy(self.encode_any_np(space, actions))
