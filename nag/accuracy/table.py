"""An accuracy source backed by the rows of a table: it labels exactly the architectures it holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nag.data import ArchTable
from nag.errors import NagError
from nag.space import SearchSpace, get_space

__all__ = ["TableAccuracySource", "UnlabelledArchitectureError"]


class UnlabelledArchitectureError(NagError, LookupError):
    """An architecture is not in the table, so the table cannot give its accuracy."""

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0]) if self.args else ""


class TableAccuracySource:
    """Accuracy of the architectures in an :class:`ArchTable`; an :class:`nag.accuracy.AccuracySource`.

    Repeated rows of one architecture are averaged. :attr:`archs` lists the architectures it can label
    (a search labels those rather than sampling new ones). Read-only and thread-safe.
    """

    def __init__(self, table: ArchTable) -> None:
        if table.accuracy is None:
            raise UnlabelledArchitectureError(f"{table.source} has no accuracy column, so it cannot serve as an accuracy source")
        self._space: SearchSpace[Any] = get_space(table.space)
        sums: dict[str, list[float]] = {}
        for arch, accuracy in zip(table.archs, table.accuracy, strict=True):
            sums.setdefault(arch, []).append(accuracy)
        self._accuracy = {arch: sum(values) / len(values) for arch, values in sums.items()}
        self._source = table.source

    @property
    def space(self) -> str:
        return self._space.name

    @property
    def archs(self) -> list[str]:
        """The distinct architectures of the table, canonical strings, in first-seen order."""
        return list(self._accuracy)

    def accuracy(self, archs: Sequence[Any]) -> list[float]:
        found = []
        for value in archs:
            arch = self._space.format(self._space.parse(value))
            if arch not in self._accuracy:
                raise UnlabelledArchitectureError(
                    f"architecture {arch} is not in {self._source} ({len(self._accuracy)} architectures); a table labels only "
                    "its own rows: use ofa-predictor:PATH to label any architecture"
                )
            found.append(self._accuracy[arch])
        return found
