"""Human-readable views of metrics: rich tables for the terminal and RESULTS.md rows (shared by stages 2 and 3, the
model card and `dfer evaluate`; the PNGs are `dfer.train.plots`).

Input is what `dfer.train.metrics` returns (fractions in [0, 1]); everything shown is in percent, as DFER papers
report WAR/UAR/F1, except counts and NLL.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

# (key in the metrics dict, column label), in the order every view shows them
# The baselines a heads run is read against: their run folder under RUN (and config.json "model") -> their row's name
BASELINES = {"zeroshot": "zero-shot", "probe": "linear probe"}
HEADLINE = (("WAR", "WAR"), ("UAR", "UAR"), ("macro_f1", "macro-F1"), ("weighted_f1", "weighted-F1"))


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def metrics_table(metrics: dict, labels: Sequence[str] | None = None) -> Table:
    """One run's metrics: the headline numbers (WAR, UAR, F1s, ECE, NLL, n), then a row per class, named by
    `labels` (the display names, in the order of metrics["per_class"]; by default its keys, the same words)."""
    table = Table("metric", title="evaluation (rates in %)")
    for column in ("value", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    for key, label in HEADLINE:
        table.add_row(label, _pct(metrics[key]))
    table.add_row("ECE", _pct(metrics["ece"]))
    table.add_row("NLL", f"{metrics['nll']:.4f}")
    table.add_row("n", str(metrics["n"]))
    table.add_section()
    for name, s in zip(labels or list(metrics["per_class"]), metrics["per_class"].values(), strict=True):
        table.add_row(name, "", _pct(s["precision"]), _pct(s["recall"]), _pct(s["f1"]), str(s["support"]))
    return table


def folds_table(summary: dict) -> Table:
    """`summarise_folds` output as mean ± std per metric, with the per-fold values beside it."""
    table = Table("metric", title=f"{_n_folds(summary)} folds (%)")
    table.add_column("mean ± std", justify="right")
    table.add_column("folds", justify="right")
    labels = dict(HEADLINE)
    for key, s in summary.items():
        folds = " ".join(_pct(v) for v in s["values"])
        table.add_row(labels.get(key, key), f"{_pct(s['mean'])} ± {_pct(s['std'])}", folds)
    return table


def _n_folds(summary: dict) -> int:
    return max((len(s["values"]) for s in summary.values()), default=0)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")  # a bare | would split the markdown cell


def markdown_header(extra: Sequence[str] = ()) -> str:
    """Header and separator lines of a RESULTS.md table whose rows come from `markdown_row` with these extra keys."""
    names = ["name", *(label + " (%)" for _, label in HEADLINE), *extra]
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def markdown_row(name: str, summary_or_metrics: dict, extra: dict | None = None) -> str:
    """One RESULTS.md row: name, WAR, UAR, macro-F1, weighted-F1 (percent), then `extra`'s values in its order.

    Takes either a `summarise_folds` summary (cells "mean ± std") or one run's `classification_metrics` (cells are
    the single value), so a k-fold protocol and a single split land in the same table. Pair it with
    `markdown_header(list(extra))`; extra holds e.g. {"fusion": "liquid", "commit": "abc1234", "command": "..."}.
    """
    cells = [_cell(name), *(_figure(summary_or_metrics.get(key)) for key, _ in HEADLINE)]
    cells += [_cell(v) for v in (extra or {}).values()]
    return "| " + " | ".join(cells) + " |"


def _figure(value: dict | float | None) -> str:
    """A `summarise_folds` entry as "mean ± std", one run's rate as itself, in percent; a missing one as "–"."""
    if isinstance(value, dict):
        return f"{_pct(value['mean'])} ± {_pct(value['std'])}"
    return "–" if value is None else _pct(value)


def comparison_table(rows: dict[str, dict], keys: Sequence[str], title: str) -> Table:
    """Models one above the other (`rows`: name -> a `summarise_folds` summary or one run's metrics) on `keys`."""
    labels = dict(HEADLINE)
    table = Table("model", title=title)
    for key in keys:
        table.add_column(f"{labels.get(key, key)} (%)", justify="right")
    for name, figures in rows.items():
        table.add_row(name, *(_figure(figures.get(key)) for key in keys))
    return table
