"""The demo's report: figures as PNG, the numbers as CSV and JSON, and one self-contained HTML page.

- ``frontier.png``: top-1 against table latency of the search's labelled rows (the DyNAS-T rows, or the
  sampled subnets), their Pareto front, the mean top-1 per latency quintile (the trend), and the generated
  architecture of each budget.
- ``histogram.png``: the paper's Fig. 3 on this machine: (a) the latency histogram of the uniformly sampled
  architectures, then for some budgets the latencies of the generator's raw draws against uniform
  sampling, with the budget marked.
- ``validation.png``: the block table's prediction against measured whole networks (written by the
  latency stage).
- ``sampled.csv``, ``generated.csv``, ``summary.json``, and ``report.html`` with all of it inlined.

:func:`render_directory` redraws all of it from a demo directory's ``demo.json`` (``nag report DIR``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nag.data import atomic_write_bytes
from nag.demo.result import DemoResult, load_result
from nag.reporting import STYLE, csv_bytes, html_table, img_tag, pareto_front, png

__all__ = ["p_text", "quantile_bins", "render_directory", "spearman", "write_report"]

GENERATED_COLUMNS = ("budget_ms", "arch", "latency_ms", "rescaled_ms", "measured_ms", "accuracy", "top1", "feasible", "time_ms")


def quantile_bins(xs: Sequence[float], ys: Sequence[float], bins: int = 5) -> list[dict[str, float]]:
    """Split the points into ``bins`` groups of equal size by x; each group's mean x, mean y and y's standard error."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    groups = [order[round(b * len(order) / bins) : round((b + 1) * len(order) / bins)] for b in range(bins)]
    out = []
    for group in groups:
        if not group:
            continue
        gy = [ys[i] for i in group]
        mean_y = sum(gy) / len(gy)
        var = sum((y - mean_y) ** 2 for y in gy) / (len(gy) - 1) if len(gy) > 1 else 0.0
        out.append({"x": sum(xs[i] for i in group) / len(group), "y": mean_y, "se": math.sqrt(var / len(gy)), "n": len(gy)})
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float | None]:
    """Spearman's rank correlation and its two-sided p-value (None when undefined, e.g. constant values): the
    Pearson correlation of the average ranks, and the p-value of ``t = rho sqrt((n - 2) / (1 - rho^2))`` under
    Student's t with ``n - 2`` degrees of freedom, as ``scipy.stats.spearmanr`` computes them (without its
    import, most of a rerun's report time)."""
    import numpy as np
    from scipy.special import stdtr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:  # a constant side has no ranks to correlate
        return {"rho": None, "p_value": None}
    rx, ry = _average_ranks(xs), _average_ranks(ys)
    rho = float(np.clip(np.corrcoef(rx, ry)[0, 1], -1.0, 1.0))
    n = len(xs)
    if abs(rho) == 1.0:
        return {"rho": rho, "p_value": 0.0}
    t = rho * math.sqrt((n - 2) / ((1.0 - rho) * (1.0 + rho)))
    return {"rho": rho, "p_value": float(2.0 * stdtr(n - 2, -abs(t)))}


def _average_ranks(values: Sequence[float]) -> Any:
    """1-based ranks of ``values``, ties sharing their average rank."""
    import numpy as np

    _, inverse, counts = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # the rank of each distinct value's last copy
    return (ends - (counts - 1) / 2.0)[inverse]


def _frontier(result: DemoResult, trend: list[dict[str, float]], rho: dict[str, float | None]) -> Callable[[Any], None]:
    def draw(figure: Any) -> None:
        axes = figure.subplots()
        lat = [r["latency_ms"] for r in result.sampled]
        acc = [100 * r["accuracy"] for r in result.sampled]
        axes.scatter(lat, acc, s=10, color="tab:gray", alpha=0.55, edgecolors="none", label=f"{len(lat)} {_rows_name(result)}")
        front = pareto_front(list(zip(lat, acc, strict=True)))
        axes.step(
            [p[0] for p in front],
            [p[1] for p in front],
            where="post",
            color="tab:gray",
            linewidth=1.0,
            label="their Pareto front",
        )
        axes.errorbar(
            [b["x"] for b in trend], [100 * b["y"] for b in trend], yerr=[100 * b["se"] for b in trend], color="tab:blue",
            marker="o", capsize=3, label="mean per latency quintile (+-1 s.e.)",
        )  # fmt: skip
        for i, g in enumerate(result.generated):
            axes.axvline(g["budget_ms"], color="tab:red", linestyle=":", linewidth=0.8, label="budgets" if i == 0 else None)
            axes.plot([g["latency_ms"], g["measured_ms"]], [100 * g["top1"]] * 2, color="tab:red", linewidth=0.8, alpha=0.6)
        top1 = [100 * g["top1"] for g in result.generated]
        axes.scatter(
            [g["latency_ms"] for g in result.generated], top1, marker="*", s=150, color="tab:red", edgecolors="black",
            linewidths=0.5, zorder=5, label=f"generated ({_scored_name(result)}), at table latency",
        )  # fmt: skip
        axes.scatter(
            [g["measured_ms"] for g in result.generated], top1, marker="*", s=150, facecolors="none", edgecolors="tab:red",
            zorder=5, label="generated, at measured latency",
        )  # fmt: skip
        c = result.config
        r = "n/a" if rho["rho"] is None else f"{rho['rho']:.2f}"
        axes.set_title(
            f"ofa-mbv3 w{c.network_width:.1f}: latency at {c.resolution} px on {c.kind}, {_top1_name(result)}\n"
            f"Spearman rho(latency, top-1) = {r}",
            fontsize=9,
        )
        calibrated = "calibrated" if result.table.get("validation", {}).get("calibrated") else "uncalibrated"
        axes.set_xlabel(f"latency (ms): block table, {calibrated} ({c.kind})")
        axes.set_ylabel(f"{_top1_name(result)} (%)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="lower right")

    return draw


def _dynast(result: DemoResult) -> bool:
    return result.config.accuracy == "dynast"


def _rows_name(result: DemoResult) -> str:
    """What the search's labelled rows are, after their count."""
    return "DyNAS-T rows (real top-1)" if _dynast(result) else "sampled subnets (search-validation)"


def _scored_name(result: DemoResult) -> str:
    """How a generated network's top-1 was obtained, in a few words."""
    return "predictor estimate" if _dynast(result) else "test split"


def _top1_name(result: DemoResult) -> str:
    """The y axis: what the top-1 figures are."""
    c = result.config
    return "ImageNet top-1" if _dynast(result) else f"top-1 on {c.data_label} at {c.accuracy_resolution} px"


def _histograms(result: DemoResult) -> Callable[[Any], None]:
    sampled = result.uniform_ms
    chosen = _histogram_budgets(result.proposals)

    def draw(figure: Any) -> None:
        panels = figure.subplots(1, 1 + len(chosen), squeeze=False)[0]
        low = min(sampled + [x for p in chosen for x in p["latencies_ms"]])
        high = max(sampled + [x for p in chosen for x in p["latencies_ms"]])
        edges = [low + (high - low) * i / 30 for i in range(31)]
        panels[0].hist(sampled, bins=edges, color="tab:gray")
        panels[0].set_title(f"(a) {len(sampled)} uniformly sampled (table latency)", fontsize=9)
        panels[0].set_ylabel("architectures")
        for index, (axes, proposal) in enumerate(zip(panels[1:], chosen, strict=True)):
            budget, draws = proposal["budget_ms"], proposal["latencies_ms"]
            inside = sum(x <= budget for x in draws) / len(draws)
            uniform = sum(x <= budget for x in sampled) / len(sampled)
            weights = [len(draws) / len(sampled)] * len(sampled)  # uniform sampling scaled to the same count
            axes.hist(sampled, bins=edges, weights=weights, color="tab:gray", alpha=0.45, label=f"uniform ({uniform:.0%} fit)")
            axes.hist(draws, bins=edges, color="tab:blue", alpha=0.75, label=f"PNAG generator ({inside:.0%} fit)")
            axes.axvline(budget, color="tab:red", linewidth=1.5, label=f"B = {budget:g} ms")
            axes.set_title(f"({chr(ord('b') + index)}) {len(draws)} draws given B = {budget:g} ms", fontsize=9)
            axes.legend(fontsize=7)
        for axes in panels:
            axes.set_xlabel("latency (ms)")
            axes.grid(alpha=0.3)

    return draw


def _histogram_budgets(proposals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first, middle and last budgets (as the paper shows a few budgets, not all)."""
    if len(proposals) <= 3:
        return proposals
    return [proposals[0], proposals[len(proposals) // 2], proposals[-1]]


def summarise(result: DemoResult) -> dict[str, Any]:
    """The report's numbers (``summary.json``)."""
    lat = [r["latency_ms"] for r in result.sampled]
    acc = [r["accuracy"] for r in result.sampled]
    trend = quantile_bins(lat, acc)
    proposals = [
        {"budget_ms": p["budget_ms"], "n": len(p["latencies_ms"]),
         "fit_generator": sum(x <= p["budget_ms"] for x in p["latencies_ms"]) / len(p["latencies_ms"]),
         "fit_uniform": sum(x <= p["budget_ms"] for x in result.uniform_ms) / len(result.uniform_ms)}
        for p in result.proposals
    ]  # fmt: skip
    return {
        "config": result.config.to_dict(),
        "stages": [s.__dict__ for s in result.stages],
        "latency_table": result.table,
        "accuracy": result.accuracy,
        "sampled": {"n": len(lat), "accuracy_vs_latency": {**spearman(lat, acc), "quintiles": trend}},
        "search": result.search,
        "generated": [{k: g.get(k) for k in (*GENERATED_COLUMNS, "note")} for g in result.generated],
        "proposals": proposals,
        "files": result.files,
    }


def write_report(result: DemoResult) -> dict[str, Any]:
    """Write every report file into ``result.out``; returns the summary."""
    out = result.out
    summary = summarise(result)
    trend = summary["sampled"]["accuracy_vs_latency"]
    frontier = png(_frontier(result, trend["quintiles"], trend), size=(7.2, 4.8))
    histogram = png(_histograms(result), size=(4.0 * (1 + len(_histogram_budgets(result.proposals))), 3.6))
    atomic_write_bytes(out / "frontier.png", frontier)
    atomic_write_bytes(out / "histogram.png", histogram)
    atomic_write_bytes(out / "sampled.csv", csv_bytes(result.sampled, ("arch", "latency_ms", "accuracy")))
    atomic_write_bytes(out / "generated.csv", csv_bytes(result.generated, GENERATED_COLUMNS))
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    validation = (out / "validation.png").read_bytes() if (out / "validation.png").exists() else None
    page = render_html(result, summary, {"frontier": frontier, "histogram": histogram, "validation": validation})
    atomic_write_bytes(out / "report.html", page.encode())
    return summary


def render_directory(folder: str | Path) -> Path:
    """Redraw every report file of a demo directory from its ``demo.json``; returns ``report.html``.

    Raises :class:`nag.demo.result.DemoFileError` (saying to rerun ``nag demo``) when there is none.
    """
    result = load_result(folder)
    result.summary = write_report(result)
    return result.out / "report.html"


# -- HTML ------------------------------------------------------------------------------------------------------
def p_text(value: float | None) -> str:
    """A p-value as text: "n/a" when undefined, "< 1e-300" when it underflowed to 0."""
    if value is None:
        return "n/a"
    return "< 1e-300" if value == 0 else f"{value:.2g}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _accuracy_source(result: DemoResult) -> str:
    c, accuracy = result.config, result.accuracy
    if _dynast(result):
        fit = accuracy.get("cross_fit", {})
        return (
            f"Accuracy: real ImageNet top-1 of {len(result.sampled)} OFA-MobileNetV3 w1.0 subnets measured by IntelLabs' "
            "DyNAS-T (Apache-2.0), shipped with the package; they label the search. A generated network's top-1 is the "
            "estimate of an RBF kernel-ridge predictor fitted on those rows, not a measurement: its cross-fitted error "
            f"({fit.get('folds', '?')} folds) is RMSE {fit.get('rmse_points', float('nan')):.3f} points of top-1, Kendall "
            f"tau {fit.get('kendall_tau', float('nan')):.3f}, measured on rows the searches had visited; far from them "
            "it is larger."
        )
    supernet = (
        f"the supernet <code>{html.escape(c.checkpoint)}</code>"
        if c.checkpoint
        else "a once-for-all supernet trained here by progressive shrinking"
    )
    splits = accuracy.get("splits", {})
    split = (
        f"Images split three ways, disjoint and fixed by the seed: {splits.get('train', '?')} train (the supernet, "
        f"batch-norm recalibration), {splits.get('search_validation', '?')} search-validation (score the sampled subnets "
        f"that label the search), {splits.get('test', '?')} test (score the generated networks only)."
    )
    if c.data == "digits":
        return (
            f"Accuracy from a small proxy: {supernet} on scikit-learn's 8x8 digits, upsampled to {c.accuracy_resolution} px, "
            f"each subnet batch-norm recalibrated. {split} The proxy shows the mechanics, not ImageNet accuracy: see "
            "the README for real data."
        )
    return (
        f"Accuracy: {supernet}, each subnet batch-norm recalibrated on <code>{html.escape(c.data)}/train</code>, at "
        f"{c.accuracy_resolution} px; <code>{html.escape(c.data)}/val</code> is halved into the two held-out splits. {split}"
    )


def _generated_note(result: DemoResult) -> str:
    """What the generated table's top-1 column is, and which split (if any) scored it."""
    if _dynast(result):
        return (
            '"Top-1 (predictor estimate)" is the DyNAS-T predictor\'s estimate for the generated network (see its error above); '
            '"search estimate" is the search\'s own accuracy model.'
        )
    return (
        '"Top-1 (test split)" is the supernet\'s measurement on the test split, which labelled nothing; the search was '
        'labelled on the search-validation split. "Search estimate" is the search\'s own accuracy model.'
    )


def _rescale_note(result: DemoResult) -> str:
    """Whether the machine ran at the table's speed when the generated networks were measured, and by how much not."""
    r = result.rescale
    if not r:
        return ""
    return (
        f'"Predicted now" is the table\'s prediction times {r["factor"]:.3f} (band {r["low"]:.3f}-{r["high"]:.3f}): the median '
        f"ratio of the {len(r['references'])} reference networks measured just now to the same networks measured while the "
        "table was built. A gap between the predicted and the measured latency that this factor closes is the machine's "
        "speed changing between the two (load, frequency, temperature), not an error of the table."
    )


def _files_note(result: DemoResult) -> str:
    files = ["sampled.csv", "generated.csv", "summary.json", "demo.json", *result.files.values(), "latency.db (SQLite)"]
    if not _dynast(result) and result.config.checkpoint is None:
        files.append("supernet.pt")
    named = ", ".join(html.escape(f) for f in files)
    return f"Files beside this page: {named}, search/ (the run directory: <code>nag generate --run search --budget MS</code>)."


def render_html(result: DemoResult, summary: dict[str, Any], pngs: dict[str, bytes | None]) -> str:
    c = result.config
    trend = summary["sampled"]["accuracy_vs_latency"]
    validation = result.table.get("validation", {})
    rho = "n/a" if trend["rho"] is None else f"{trend['rho']:.3f}"
    p_value = p_text(trend["p_value"])
    stages = html_table(
        ["stage", "seconds", "reused", "what happened"],
        [[s.name, f"{s.seconds:.1f}", "yes" if s.reused else "no", s.detail] for s in result.stages],
        text_columns=(0, 3),
    )
    columns = [
        "budget (ms)", "predicted (ms)", "predicted now (ms)", "measured (ms)", f"top-1 ({_scored_name(result)})",
        "search estimate",
    ]  # fmt: skip
    generated = html_table(
        [*columns, "feasible", "inference (ms)", "architecture"],
        [
            [
                f"{g['budget_ms']:g}",
                f"{g['latency_ms']:.3f}",
                "n/a" if g.get("rescaled_ms") is None else f"{g['rescaled_ms']:.3f}",
                f"{g['measured_ms']:.3f}",
                _pct(g["top1"], 2),
                _pct(g["accuracy"], 2),
                "yes" if g["feasible"] else "no",
                f"{g['time_ms']:.1f}",
                g["arch"],
            ]
            for g in result.generated
        ],
        text_columns=(8,),
    )
    quintiles = html_table(
        ["latency quintile", "mean latency (ms)", "mean top-1", "s.e.", "rows"],
        [[str(i + 1), f"{b['x']:.3f}", _pct(b["y"], 2), _pct(b["se"], 2), str(b["n"])] for i, b in enumerate(trend["quintiles"])],
    )
    fits = html_table(
        ["budget (ms)", "generator draws within budget", "uniform samples within budget"],
        [[f"{p['budget_ms']:g}", _pct(p["fit_generator"]), _pct(p["fit_uniform"])] for p in summary["proposals"]],
    )
    key = result.table.get("key", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NAG Farm demo report</title><style>{STYLE}</style></head>
<body>
<h1>NAG Farm demo: PNAG on this machine</h1>
<p>Search space <code>ofa-mbv3</code> at width {c.network_width:.1f}. Latency measured at {c.resolution} px by the local
<code>{html.escape(c.kind)}</code> agent ({html.escape(str(key.get("runtime", "")))} {html.escape(str(key.get("runtime_version", "")))}).
{_accuracy_source(result)}</p>

<h2>Stages</h2>{stages}

<h2>Accuracy against latency</h2>
<p>Spearman's rho between table latency and top-1 over the {summary["sampled"]["n"]} {_rows_name(result)}: <b>{rho}</b>
(p = {p_value}).</p>
{img_tag(pngs["frontier"], "frontier")}
{quintiles}

<h2>Generated architectures</h2>
<p>One generator inference per budget, then each network measured on the farm. {_generated_note(result)}
{_rescale_note(result)}</p>
{generated}

<h2>Latency histograms (as the paper's Fig. 3)</h2>
{img_tag(pngs["histogram"], "latency histograms")}
{fits}

<h2>The latency table against measured networks</h2>
<p>{validation.get("n", 0)} random whole networks; {"calibrated and cross-fitted" if validation.get("calibrated") else "uncalibrated"}:
within 10%: {_pct(validation.get("within_10pct"))}, MAPE {_pct(validation.get("mape"))},
Kendall tau {validation.get("kendall_tau") if validation.get("kendall_tau") is None else f"{validation['kendall_tau']:.3f}"}.</p>
{img_tag(pngs["validation"], "table validation")}
<p class="note">{_files_note(result)}</p>
</body></html>
"""
