"""The fitted kernel predictor near one architecture: its neighbours' accuracy at a fraction of the cost.

A local search (:mod:`nag.search.refine`) labels about a hundred neighbours of its current architecture per
step, each one or two decisions away. For the RBF kernel ridge model of :mod:`nag.accuracy.fitted`,
``sum_j w_j exp(2 gamma a.b_j)`` over the support rows ``b_j`` (``w_j`` folds in ``exp(-gamma |b_j|)`` and the
dual weight), a neighbour ``a' = a - R + S`` (columns ``R`` switched off, ``S`` switched on) has
``a'.b_j = a.b_j - sum_R b_j + sum_S b_j``. With ``u_j = w_j exp(2 gamma a.b_j)`` computed once for ``a``:

- **one choice changed** (``R = {r}``, ``S = {s}``, two columns no support row has both, e.g. two kernels of
  one slot): ``exp(2 gamma (b_s - b_r))`` is ``1 + (e^{2 gamma} - 1) b_s + (e^{-2 gamma} - 1) b_r``, so the
  sum is ``U + (e^{2 gamma} - 1) U_s + (e^{-2 gamma} - 1) U_r`` with ``U = sum u`` and ``U_c = sum_j u_j b_cj``,
  all read from one product per base: O(1) per neighbour instead of O(columns x support).
- **anything else** (a layer added or dropped, a trade of two moves): ``sum_j u_j exp(2 gamma d_j)`` with
  ``d_j`` gathered from the changed columns' support rows: O(changed columns x support).

The values equal :meth:`nag.accuracy.fitted.FittedAccuracyPredictor.accuracy_encoded`'s up to float rounding
(another order of summation; the tests bound the difference by 1e-12). A caller that reports a value asks
the predictor itself; :mod:`nag.search.refine` ranks with these and labels its pick exactly. A
:class:`Neighbourhood` is built per base (one product over the support) and is then read-only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KernelMoves", "Neighbourhood"]


class KernelMoves:
    """The parts of ``offset + exp(-gamma |a|) sum_j weights_j exp(2 gamma a.b_j)`` that do not depend on ``a``.

    ``table`` is ``(columns + 1, n)`` 0/1: support row ``j`` has column ``c`` (the last row, a spare column, is 0).
    Read-only after construction.
    """

    def __init__(self, table: np.ndarray, weights: np.ndarray, gamma: float, offset: float) -> None:
        self.table = table  # uint8
        self.columns = table.shape[0] - 1
        self.dense = np.ascontiguousarray(table, dtype=np.float64)  # for U_c, one product per base
        self.weights = weights
        self.gamma, self.offset = gamma, offset
        self.up, self.down = float(np.expm1(2.0 * gamma)), float(np.expm1(-2.0 * gamma))
        self.exclusive = (self.dense @ self.dense.T) == 0.0  # (columns + 1,)^2: no support row has both

    def around(self, base: np.ndarray) -> Neighbourhood:
        """The model near the 0/1 row ``base`` ``(columns,)``."""
        return Neighbourhood(self, base)


class Neighbourhood:
    """Predicted accuracy (before any clip) of rows near one base row."""

    def __init__(self, model: KernelMoves, base: np.ndarray) -> None:
        self._model = model
        self._base = base.astype(np.int8)
        active = np.nonzero(self._base)[0]
        self._u = model.weights * np.exp((2.0 * model.gamma) * model.table[active].sum(axis=0, dtype=np.int64))
        self._u_total = float(self._u.sum())
        self._u_columns = model.dense @ self._u  # (columns + 1,); the spare column's is 0
        self._count = len(active)

    def values(self, rows: np.ndarray) -> np.ndarray:
        """Each 0/1 row of ``rows`` ``(m, columns)``."""
        model = self._model
        diff = rows.astype(np.int8) - self._base[None, :]
        added, removed = diff > 0, diff < 0
        n_added, n_removed = added.sum(axis=1), removed.sum(axis=1)
        on = np.where(n_added == 1, added.argmax(axis=1), model.columns)
        off = np.where(n_removed == 1, removed.argmax(axis=1), model.columns)
        simple = (n_added <= 1) & (n_removed <= 1) & model.exclusive[on, off]
        sums = np.empty(len(rows))
        sums[simple] = self._u_total + model.up * self._u_columns[on[simple]] + model.down * self._u_columns[off[simple]]
        rest = np.nonzero(~simple)[0]
        if len(rest):
            sums[rest] = self._gathered(added[rest], removed[rest])
        count = self._count + n_added - n_removed
        return model.offset + np.exp(-model.gamma * count) * sums

    def _gathered(self, added: np.ndarray, removed: np.ndarray) -> np.ndarray:
        """``sum_j u_j exp(2 gamma d_j)`` for rows whose change is not a single exclusive swap."""
        model = self._model
        on, off = self._changed(added), self._changed(removed)
        delta = model.table[on].sum(axis=1, dtype=np.int16) - model.table[off].sum(axis=1, dtype=np.int16)
        scale = np.exp((2.0 * model.gamma) * np.arange(-off.shape[1], on.shape[1] + 1))  # by delta, lowest first
        return scale[delta + off.shape[1]] @ self._u

    def _changed(self, mask: np.ndarray) -> np.ndarray:
        """``(m, w)`` the columns set in each row of ``mask``, padded with the spare column (w >= 1)."""
        width = max(1, int(mask.sum(axis=1).max()))
        order = np.argsort(~mask, axis=1, kind="stable")[:, :width]
        return np.where(np.take_along_axis(mask, order, axis=1), order, self._model.columns)
