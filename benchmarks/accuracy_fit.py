"""Which accuracy model to fit on the DyNAS-T rows: 5-fold cross-fitted error of each candidate, and speed.

    PYTHONPATH=. python benchmarks/accuracy_fit.py [--folds 5] [--seed 0]

Candidates, all on ``space.encode`` (120 one-hot features of ofa-mbv3), all on the same folds
(:func:`nag.accuracy.fitted.cross_fit_folds`) and scored by :meth:`CrossFitReport.of`:

- ridge on the one-hot encoding (scikit-learn ``Ridge``), several alphas;
- ridge with pairwise features within a stage (the outer product of every pair of slots' 6-dim one-hot
  kernel+expand blocks of one stage, 1,920 features);
- an MLP ensemble (3 scikit-learn ``MLPRegressor``, different seeds, averaged; ``--big-mlp`` adds a larger one);
- RBF kernel ridge as shipped (:class:`FittedAccuracyPredictor`), at a few gamma/alpha.

Also an extrapolation split (fit on the 80% smallest networks by MACs, score on the 20% largest), and
the prediction time of the shipped predictor per 100 parsed architectures. Prints Markdown for FIT.md.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor

from nag.accuracy.dynast import dynast_rows
from nag.accuracy.fitted import CrossFitReport, FittedAccuracyPredictor, cross_fit_folds
from nag.space import get_space


class _MLPEnsemble:
    def __init__(self, members: int, hidden: tuple[int, ...]) -> None:
        self.models = [
            MLPRegressor(hidden_layer_sizes=hidden, alpha=1e-2, max_iter=1000, early_stopping=True, random_state=i)
            for i in range(members)
        ]

    def fit(self, x: np.ndarray, y: np.ndarray) -> _MLPEnsemble:
        for model in self.models:
            model.fit(x, y)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.mean([model.predict(x) for model in self.models], axis=0)


class _Kernel:
    """The shipped predictor behind the fit/predict interface of the scikit-learn candidates."""

    def __init__(self, gamma: float, alpha: float, archs: list[str]) -> None:
        self.gamma, self.alpha, self.archs = gamma, alpha, archs
        self.model: FittedAccuracyPredictor | None = None

    def fit(self, rows: np.ndarray, y: np.ndarray) -> _Kernel:
        chosen = [self.archs[int(i)] for i in rows[:, 0]]  # y is centred points: shift into [0, 1] (the fit removes its mean)
        self.model = FittedAccuracyPredictor.fit(chosen, (y / 100 + 0.5).tolist(), gamma=self.gamma, alpha=self.alpha)
        return self

    def predict(self, rows: np.ndarray) -> np.ndarray:
        assert self.model is not None
        return (np.asarray(self.model.accuracy([self.archs[int(i)] for i in rows[:, 0]])) - 0.5) * 100


def _pairwise(x: np.ndarray) -> np.ndarray:
    slots = [np.concatenate([x[:, 3 * s : 3 * s + 3], x[:, 60 + 3 * s : 63 + 3 * s]], axis=1) for s in range(20)]
    features = [x]
    for stage in range(5):
        for i in range(4):
            for j in range(i, 4):
                a, b = slots[4 * stage + i], slots[4 * stage + j]
                features.append((a[:, :, None] * b[:, None, :]).reshape(len(x), -1))
    return np.concatenate(features, axis=1)


def _cross_fit(make: Callable[[], Any], x: np.ndarray, y: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    predicted = np.empty_like(y)
    for fold in range(int(fold_of.max()) + 1):
        train, test = fold_of != fold, fold_of == fold
        offset = y[train].mean()
        predicted[test] = make().fit(x[train], y[train] - offset).predict(x[test]) + offset
    return predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big-mlp", action="store_true", help="also the 3 x (128, 128) MLP ensemble (about 150 s)")
    args = parser.parse_args()
    space = get_space("ofa-mbv3")
    rows = dynast_rows()
    archs = [row.arch for row in rows]
    y = np.asarray([row.accuracy for row in rows]) * 100  # points, so every candidate's alpha means the same
    macs = np.asarray([row.macs for row in rows], dtype=float)
    onehot = np.asarray([space.encode(space.parse(a)) for a in archs])
    index = np.arange(len(archs), dtype=float)[:, None]
    fold_of = cross_fit_folds(len(archs), folds=args.folds, seed=args.seed)
    small = macs < np.quantile(macs, 0.8)
    candidates: list[tuple[str, Callable[[], Any], np.ndarray]] = [
        *[(f"ridge, one-hot (alpha {a})", lambda a=a: Ridge(alpha=a), onehot) for a in (1, 3, 10)],
        *[(f"ridge, pairwise within stage (alpha {a})", lambda a=a: Ridge(alpha=a), _pairwise(onehot)) for a in (10, 30)],
        ("MLP ensemble, 3 x (64)", lambda: _MLPEnsemble(3, (64,)), onehot),
        *([("MLP ensemble, 3 x (128, 128)", lambda: _MLPEnsemble(3, (128, 128)), onehot)] if args.big_mlp else []),
        *[
            (f"RBF kernel ridge (gamma {g}, alpha {a})", lambda g=g, a=a: _Kernel(g, a, archs), index)
            for g, a in ((0.005, 0.01), (0.01, 0.01), (0.02, 0.01), (0.01, 0.1))
        ],
    ]
    print(f"{len(archs)} architectures, {args.folds} folds, seed {args.seed}\n")
    print(
        "| model | RMSE (pt) | MAE (pt) | Kendall tau | Spearman | top-10% RMSE (pt) | fit+CV s | extrapolation RMSE (pt) | extrapolation tau |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, make, x in candidates:
        start = time.perf_counter()
        report = CrossFitReport.of(_cross_fit(make, x, y, fold_of) / 100, y / 100, folds=args.folds)
        seconds = time.perf_counter() - start
        offset = y[small].mean()
        far = make().fit(x[small], y[small] - offset).predict(x[~small]) + offset
        extra = CrossFitReport.of(far / 100, y[~small] / 100, folds=1)
        print(
            f"| {name} | {report.rmse_points:.3f} | {report.mae_points:.3f} | {report.kendall_tau:.3f} | {report.spearman:.4f} "
            f"| {report.top_decile_rmse_points:.3f} | {seconds:.1f} | {extra.rmse_points:.3f} | {extra.kendall_tau:.3f} |"
        )
    shipped = FittedAccuracyPredictor.fit(archs, (y / 100).tolist())
    batch = space.sample_many(100, seed=args.seed)
    random.Random(args.seed).shuffle(batch)
    timings = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(50):
            shipped.accuracy(batch)
        timings.append((time.perf_counter() - start) / 50 * 1e3)
    print(
        f"\nprediction: {min(timings):.2f} ms per 100 parsed architectures (best of 7 x 50), median {sorted(timings)[3]:.2f} ms"
    )


if __name__ == "__main__":
    main()
