"""The bench's files: every figure as CSV/JSON, the paper's Table 2-5 analogues (Markdown and HTML), plots.

Written into the bench directory:

- ``bench.json``: the ``--json`` object, ``{"results": [...], "summary": {...}}``, plus ``task`` (where the
  data and the sources came from) and ``draws`` (raw-draw latencies per method and budget, for re-rendering);
- ``results.csv`` (one row per method and budget), ``summary.json``, ``tables.md``;
- ``frontier.png`` (Fig. 5 style: every method's answers on the latency/accuracy plane, one panel each,
  over the task's labelled architectures), ``histograms.png`` (Fig. 3 style: raw-draw latencies of each
  method with a policy, per budget, against uniform sampling);
- ``report.html``: all of it on one self-contained page. :func:`render_directory` rebuilds it from
  ``bench.json`` alone (``nag report DIR``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nag.data import atomic_write_bytes
from nag.reporting import STYLE, csv_bytes, html_table, img_tag, png

__all__ = ["RESULT_COLUMNS", "bench_document", "render_directory", "tables", "write_outputs"]

RESULT_COLUMNS = ("method", "budget_ms", "arch", "accuracy", "latency_ms", "feasible", "time_s")
REWARDS = ("pnag", "mnasnet", "tunas", "pnag-no-acc")  # paper Table 2
STRATEGIES = ("pnag", "independent")  # paper Table 3
INFERENCE = ("pnag-sampled", "pnag", "local", "evolution")  # what refinement adds, and what the generator's start adds

Table = tuple[str, str, list[str], list[list[str]]]  # title, caption, header, rows


def bench_document(result: Any) -> dict[str, Any]:
    """The JSON object of ``nag bench --json`` (and of ``bench.json``, with ``task`` and ``draws``)."""
    return {
        "results": result.results(),
        "summary": result.summary,
        "task": result.task_notes,
        "draws": {
            "uniform_ms": list(result.uniform_ms),
            "methods": {s.method: {f"{b:g}": d for b, d in s.draws_ms.items()} for s in result.runs if s.draws_ms},
        },
    }


def _cell(row: dict[str, Any]) -> str:
    return f"{100 * row['accuracy']:.2f} ({row['latency_ms']:.1f} ms){'' if row['feasible'] else ' over'}"


def _by(results: Sequence[dict[str, Any]]) -> dict[str, dict[float, dict[str, Any]]]:
    found: dict[str, dict[float, dict[str, Any]]] = {}
    for row in results:
        found.setdefault(row["method"], {})[row["budget_ms"]] = row
    return found


def _per_budget(title: str, caption: str, methods: Sequence[str], budgets: Sequence[float], by: dict[str, Any]) -> Table:
    present = [m for m in methods if m in by]
    rows = [[f"{b:g}", *[_cell(by[m][b]) for m in present]] for b in budgets]
    means = ["mean", *[f"{100 * sum(by[m][b]['accuracy'] for b in budgets) / len(budgets):.2f}" for m in present]]
    return title, caption, ["budget (ms)", *present], [*rows, means]


def tables(document: dict[str, Any]) -> list[Table]:
    """The report's tables from a bench document (``bench_document``)."""
    results, summary = document["results"], document["summary"]
    budgets = summary["budgets_ms"]
    by = _by(results)
    methods = list(summary["methods"])
    out: list[Table] = [
        _per_budget(
            "Every method, per budget",
            "Top-1 (%) of the accuracy source and latency of the latency source; 'over' marks an answer over its budget.",
            methods,
            budgets,
            by,
        )
    ]
    if "pnag_vs_evolution" in summary:
        rows = []
        for item in summary["pnag_vs_evolution"]:
            b = item["budget_ms"]
            p, e = by["pnag"][b], by["evolution"][b]
            ratio = item["time_ratio"]
            rows.append([
                f"{b:g}", f"{100 * p['accuracy']:.2f}", f"{100 * e['accuracy']:.2f}", f"{item['accuracy_difference_points']:+.2f}",
                f"{1000 * p['time_s']:.1f} ms", f"{e['time_s']:.1f} s", "n/a" if ratio is None else f"{ratio:,.0f}x",
            ])  # fmt: skip
        out.append((
            "PNAG against per-budget evolution (OFA's settings)",
            "PNAG's time per budget is one inference after its one-off training; evolution's is its whole search.",
            ["budget (ms)", "PNAG top-1", "evolution top-1", "difference (points)", "PNAG per budget", "evolution per budget", "time ratio"],
            rows,
        ))  # fmt: skip
    if sum(m in by for m in INFERENCE) > 1:
        out.append(
            _per_budget(
                "Inference: the best draw, refined, and the same refinement without the generator",
                "pnag-sampled: the paper's inference (the best of the generator's feasible draws by the source); pnag: that "
                "pick refined by local search under the source (not in the paper); local: the same refinement climbed from the "
                "best of 100 uniform samples; evolution: OFA's per-budget search.",
                INFERENCE,
                budgets,
                by,
            )
        )
    if sum(m in by for m in REWARDS) > 1:
        out.append(_per_budget("Reward functions (paper Table 2)", "The same generator under each reward.", REWARDS, budgets, by))
    if sum(m in by for m in STRATEGIES) > 1:
        out.append(
            _per_budget(
                "Search strategies (paper Table 3)",
                "One generator for K budgets against one per budget.",
                STRATEGIES,
                budgets,
                by,
            )
        )
    sweep = [m for m in methods if m.startswith("pnag-k")]
    if sweep:
        out.append(
            _per_budget("Number of training budgets K (paper Table 5)", "PNAG trained with K budgets.", sweep, budgets, by)
        )
    out.append((
        "Time (paper Table 4) and quality across budgets",
        f"Hypervolume in {summary['hypervolume_units']} against ({summary['reference_point']['latency_ms']:g} ms, "
        f"{100 * summary['reference_point']['accuracy']:.2f}%): {summary['reference_point']['why']}. Draws within budget: "
        "mean over budgets of the share of 1,000 raw policy draws that meet the budget (uniform sampling: "
        f"{_mean_pct(summary['uniform_satisfaction'])}).",
        ["method", "training (s)", "per budget (median, s)", f"all {len(budgets)} budgets (s)", "feasible", "mean top-1", "hypervolume", "draws within budget"],
        [
            [
                m, f"{s['setup_s']:.1f}", f"{s['median_budget_time_s']:.3g}", f"{s['total_s']:.1f}", f"{100 * s['feasible_rate']:.0f}%",
                f"{100 * s['mean_accuracy']:.2f}", f"{s['hypervolume']:.1f}", "n/a" if s["satisfaction"] is None else _mean_pct(s["satisfaction"]),
            ]
            for m, s in summary["methods"].items()
        ],
    ))  # fmt: skip
    if "optimum" in summary:
        out.append((
            "Regret to the exact optimum (points of top-1)",
            "The task knows its optimum under every budget; blank: the answer is over budget.",
            ["budget (ms)", "optimum top-1", *methods],
            [
                [f"{o['budget_ms']:g}", "n/a" if o["accuracy"] is None else f"{100 * o['accuracy']:.2f}",
                 *["" if o["regret_points"].get(m) is None else f"{o['regret_points'][m]:.2f}" for m in methods]]
                for o in summary["optimum"]
            ],
        ))  # fmt: skip
    return out


def _mean_pct(values: dict[str, float]) -> str:
    finite = [v for v in values.values() if v == v]
    return "n/a" if not finite else f"{100 * sum(finite) / len(finite):.0f}%"


def markdown(found: Sequence[Table]) -> str:
    parts = []
    for title, caption, header, rows in found:
        lines = [f"### {title}", "", caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _frontier(document: dict[str, Any], labelled: Sequence[tuple[float, float]]) -> Any:
    by = _by(document["results"])
    methods = list(document["summary"]["methods"])

    def draw(figure: Any) -> None:
        columns = min(4, len(methods))
        rows = (len(methods) + columns - 1) // columns
        for n, method in enumerate(methods):
            axes = figure.add_subplot(rows, columns, n + 1)
            if labelled:
                axes.scatter([p[0] for p in labelled], [100 * p[1] for p in labelled], s=3, color="0.75", edgecolors="none")
            answers = sorted(by[method].values(), key=lambda r: r["budget_ms"])
            for r in answers:
                axes.axvline(r["budget_ms"], color="tab:red", linestyle=":", linewidth=0.6)
            axes.plot([r["latency_ms"] for r in answers], [100 * r["accuracy"] for r in answers], marker="o", color="tab:blue")
            axes.scatter(
                [r["latency_ms"] for r in answers if not r["feasible"]], [100 * r["accuracy"] for r in answers if not r["feasible"]],
                marker="x", color="tab:red", zorder=5,
            )  # fmt: skip
            axes.set_title(method, fontsize=9)
            axes.set_xlabel("latency (ms)", fontsize=8)
            axes.set_ylabel("top-1 (%)", fontsize=8)
            axes.tick_params(labelsize=7)

    return draw, (3.4 * min(4, len(methods)), 3.0 * ((len(methods) + 3) // 4))


def _histograms(document: dict[str, Any]) -> Any:
    draws = document["draws"]["methods"]
    budgets = [f"{b:g}" for b in document["summary"]["budgets_ms"]]
    uniform = document["draws"]["uniform_ms"]

    def draw(figure: Any) -> None:
        rows = len(draws)
        for r, (method, per_budget) in enumerate(draws.items()):
            for c, budget in enumerate(budgets):
                axes = figure.add_subplot(rows, len(budgets), r * len(budgets) + c + 1)
                axes.hist(uniform, bins=40, color="0.7", alpha=0.7, label="uniform")
                axes.hist(per_budget.get(budget, []), bins=40, color="tab:blue", alpha=0.7, label=method)
                axes.axvline(float(budget), color="tab:red", linewidth=1.0)
                axes.set_title(f"{method}, {budget} ms", fontsize=8)
                axes.tick_params(labelsize=6)

    return draw, (2.6 * len(budgets), 2.2 * max(1, len(draws)))


def render_directory(out: str | Path, *, labelled: Sequence[tuple[float, float]] = ()) -> Path:
    """(Re)write tables.md, the figures and report.html of a bench directory from its ``bench.json``."""
    folder = Path(out)
    document = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
    found = tables(document)
    atomic_write_bytes(folder / "tables.md", markdown(found).encode())
    frontier_draw, frontier_size = _frontier(document, labelled)
    frontier = png(frontier_draw, size=frontier_size)
    atomic_write_bytes(folder / "frontier.png", frontier)
    histograms = None
    if document["draws"]["methods"]:
        hist_draw, hist_size = _histograms(document)
        histograms = png(hist_draw, size=hist_size)
        atomic_write_bytes(folder / "histograms.png", histograms)
    atomic_write_bytes(folder / "report.html", _html(document, found, frontier, histograms).encode())
    return folder / "report.html"


def _html(document: dict[str, Any], found: Sequence[Table], frontier: bytes, histograms: bytes | None) -> str:
    task = document.get("task", {})
    facts = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in task.items())
    body = "".join(
        f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(caption)}</p>{html_table(header, rows)}"
        for title, caption, header, rows in found
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NAG Farm bench</title><style>{STYLE}</style></head>
<body>
<h1>NAG Farm bench: every method on the same budgets, scored by the sources</h1>
<p>Every answer's accuracy comes from the accuracy source and its latency from the latency source, never
from a method's own estimate.</p>
<ul>{facts}</ul>
{body}
<h2>Answers on the latency/accuracy plane (as the paper's Fig. 5)</h2>
<p class="note">Grey: the task's labelled architectures. Blue: each method's answers, budgets dotted in red; x: over budget.</p>
{img_tag(frontier, "frontiers")}
<h2>Raw policy draws against uniform sampling (as the paper's Fig. 3)</h2>
{img_tag(histograms, "histograms")}
<p class="note">Files beside this page: bench.json, results.csv, summary.json, tables.md.</p>
</body></html>
"""


def write_outputs(result: Any, out: str | Path, *, labelled: Sequence[tuple[float, float]] = ()) -> Path:
    """Write every file of a bench into ``out`` (created); returns the HTML report's path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    document = bench_document(result)
    atomic_write_bytes(folder / "bench.json", (json.dumps(document, indent=1) + "\n").encode())
    atomic_write_bytes(folder / "summary.json", (json.dumps(result.summary, indent=2) + "\n").encode())
    atomic_write_bytes(folder / "results.csv", csv_bytes(result.results(), RESULT_COLUMNS))
    return render_directory(folder, labelled=labelled)
