"""The ablation's report: mean +- std over seeds per (configuration, p), in the paper's Figure 1 layout.

* ``ablation.json``: everything (per group: MNLI and HANS accuracy, HANS per heuristic x class, each as
  ``{"mean", "std", "values"}``; the baseline; the cells' keys).
* ``ablation.md``: the Figure 1c table (HANS (entailment %, non-entailment %) per heuristic, one column group per p),
  MNLI dev accuracy per configuration (Figure 1a as numbers), HANS overall accuracy, the stress sets (overall and
  per gold class, when the cells have them: ``eval.stress_sets``), time per cell.
* ``figure_1a.png``: MNLI accuracy per configuration and p (error bars: std over seeds; dashed: baseline).
* ``figure_1b_p<p>.png``: HANS accuracy per heuristic x class, baseline and every configuration (seed means), drawn
  by :func:`hildif.model.evaluation.plot_hans_bars`.

``std`` is the sample standard deviation (ddof = 1); with one seed it is None and the tables show the mean alone.
"""

from __future__ import annotations

import io
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from hildif.model.evaluation import HEURISTICS, SHORT, plot_hans_bars
from hildif.utils.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic

CLASSES = ("entailment", "non-entailment")


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "std", "values"}`` over the non-None values (std None below two values)."""
    vals = [float(v) for v in values if v is not None]
    return {
        "mean": round(statistics.fmean(vals), 2) if vals else None,
        "std": round(statistics.stdev(vals), 2) if len(vals) > 1 else None,
        "values": vals,
    }


def _metrics(evaluations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    hans = [e.get("hans") or {} for e in evaluations]
    out = {
        "mnli": mean_std([(e.get("mnli") or {}).get("accuracy") for e in evaluations]),
        "hans": mean_std([h.get("accuracy") for h in hans]),
        "by_heuristic": {
            h: {c: mean_std([((x.get("by_heuristic") or {}).get(h) or {}).get(c) for x in hans]) for c in CLASSES}
            for h in HEURISTICS
        },
    }
    stress = [e.get("stress") or {} for e in evaluations]
    names = list(dict.fromkeys(name for s in stress for name in s))
    if names:  # Naik et al.'s stress sets: overall and per gold class
        out["stress"] = {name: {"all": mean_std([(s.get(name) or {}).get("accuracy") for s in stress]),
                                **{c: mean_std([((s.get(name) or {}).get("by_class") or {}).get(c) for s in stress])
                                   for c in CLASSES}}
                         for name in names}
    return out


def group_key(configuration_key: str, top_p: int) -> str:
    return f"{configuration_key}_p{top_p}"


def summarize(cells: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any], settings) -> dict[str, Any]:
    """Aggregate finished cell records (see :func:`hildif.experiments.ablation.run_cell`) over seeds."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for cell in cells:
        groups.setdefault(group_key(cell["configuration"]["key"], cell["top_p"]), []).append(cell)
    out_groups = {}
    for conf in settings.configurations:
        for p in settings.top_ps:
            members = sorted(groups.get(group_key(conf.key, p), []), key=lambda c: c["seed"])
            if not members:
                continue
            out_groups[group_key(conf.key, p)] = {
                "configuration": conf.to_dict(), "top_p": p, "seeds": [c["seed"] for c in members],
                "cells": [c["key"] for c in members],
                **_metrics([c["evaluation"] for c in members]),
                "fine_tuning_set_size": mean_std([c["fine_tuning_set"]["size"] for c in members]),
                "seconds": mean_std([c["seconds"]["total"] for c in members]),
            }
    base_eval = baseline["evaluation"]
    return {
        "configurations": [c.to_dict() for c in settings.configurations],
        "top_ps": list(settings.top_ps), "seeds": list(settings.seeds), "settings": settings.shaping(),
        "baseline": {"version": baseline.get("version"), **_metrics([base_eval])},
        "baseline_evaluation": base_eval,
        "eval_samples": {"hans": (base_eval.get("hans") or {}).get("n"), "mnli": (base_eval.get("mnli") or {}).get("n")},
        "groups": out_groups,
    }


def _fmt(ms: Mapping[str, Any] | None) -> str:
    if not ms or ms.get("mean") is None:
        return "-"
    return f"{ms['mean']:.2f}" if ms.get("std") is None else f"{ms['mean']:.2f} ± {ms['std']:.2f}"


def figure_1c_table(summary: Mapping[str, Any]) -> str:
    """Rows: configurations then the baseline; per p, one column per heuristic: (entailment, non-entailment)."""
    ps = summary["top_ps"]
    head = ["configuration"] + [f"p={p} {SHORT[h]}" for p in ps for h in HEURISTICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pair(group: Mapping[str, Any] | None, h: str) -> str:
        if not group:
            return "-"
        c = group["by_heuristic"][h]
        return f"({_fmt(c['entailment'])}, {_fmt(c['non-entailment'])})"

    for conf in summary["configurations"]:
        groups = [summary["groups"].get(group_key(conf["key"], p)) for p in ps]
        if not any(groups):
            continue
        lines.append("| " + " | ".join([conf["label"]] + [pair(g, h) for g in groups for h in HEURISTICS]) + " |")
    base = summary["baseline"]
    lines.append("| baseline | " + " | ".join(pair(base, h) for _ in ps for h in HEURISTICS) + " |")
    return "\n".join(lines) + "\n"


def per_configuration_table(summary: Mapping[str, Any], metric: str) -> str:
    """One row per configuration (and the baseline), one column per p: ``metric`` (mnli|hans) mean ± std."""
    ps = summary["top_ps"]
    lines = ["| configuration | " + " | ".join(f"p={p}" for p in ps) + " |", "|---|" + "---|" * len(ps)]
    for conf in summary["configurations"]:
        groups = [summary["groups"].get(group_key(conf["key"], p)) for p in ps]
        if any(groups):
            lines.append(f"| {conf['label']} | " + " | ".join(_fmt(g[metric]) if g else "-" for g in groups) + " |")
    lines.append("| baseline | " + " | ".join(_fmt(summary["baseline"][metric]) for _ in ps) + " |")
    return "\n".join(lines) + "\n"


def stress_table(summary: Mapping[str, Any]) -> str:
    """Naik et al.'s stress sets: one row per (set, configuration) and the baseline, per p the accuracy overall and
    (entailment, non-entailment), mean ± std; "" when no cell has them."""
    base = summary["baseline"].get("stress") or {}
    names = list(dict.fromkeys([*base, *(n for g in summary["groups"].values() for n in g.get("stress") or {})]))
    if not names:
        return ""
    ps = summary["top_ps"]
    head = ["set", "configuration"] + [f"p={p} all (ent, non-ent)" for p in ps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(group: Mapping[str, Any] | None, name: str) -> str:
        c = ((group or {}).get("stress") or {}).get(name)
        return f"{_fmt(c['all'])} ({_fmt(c['entailment'])}, {_fmt(c['non-entailment'])})" if c else "-"

    for name in names:
        for conf in summary["configurations"]:
            groups = [summary["groups"].get(group_key(conf["key"], p)) for p in ps]
            if any(groups):
                lines.append(f"| {name.replace('_', ' ')} | {conf['label']} | "
                             + " | ".join(cell(g, name) for g in groups) + " |")
        lines.append(f"| {name.replace('_', ' ')} | baseline | "
                     + " | ".join(cell(summary["baseline"], name) for _ in ps) + " |")
    return "\n".join(lines) + "\n"


def markdown(summary: Mapping[str, Any]) -> str:
    st = summary["settings"]
    seeds = summary["seeds"]
    n = summary["eval_samples"]
    groups = summary["groups"].values()
    rows_time = ["| configuration | p | seeds | fine-tuning set (mean) | seconds per cell (mean) |", "|---|---|---|---|---|"]
    for g in groups:
        rows_time.append(f"| {g['configuration']['label']} | {g['top_p']} | {', '.join(map(str, g['seeds']))} | "
                         f"{_fmt(g['fine_tuning_set_size'])} | {_fmt(g['seconds'])} |")
    return "\n".join([
        "# Ablation: HILDIF's debugging configurations (paper, Figure 1)",
        "",
        f"Baseline model {summary['baseline']['version']}; T = 1; {st['n_anchors']} anchors; seeds {seeds} "
        f"(mean ± sample std over seeds; one seed: mean only); simulated annotators: {st['annotators']} "
        f"(noise {st['annotator_noise']}) stand in for human scores; ¬DA = {st['no_augmentation']}. "
        f"Evaluated on {n['hans']} HANS and {n['mnli']} MNLI dev_matched examples.",
        "",
        "HS: human (simulated) scoring, DA: data augmentation, H: handpicked anchors. LO: lexical overlap, "
        "SUB: subsequence, CON: constituent.",
        "",
        "## HANS accuracy (entailment %, non-entailment %) per heuristic (Figure 1c)",
        "",
        figure_1c_table(summary),
        "## MNLI dev_matched accuracy % (Figure 1a)",
        "",
        per_configuration_table(summary, "mnli"),
        "## HANS overall accuracy %",
        "",
        per_configuration_table(summary, "hans"),
        *(["## Stress tests (Naik et al. 2018, from the MNLI dev rows): 2-class accuracy %, all (entailment, "
           "non-entailment)", "", stress] if (stress := stress_table(summary)) else []),
        "## Cells",
        "",
        "\n".join(rows_time) + "\n",
        f"This run: {len(summary.get('cells_computed') or [])} cell(s) computed, "
        f"{len(summary.get('cells_reused') or [])} reused from an earlier run; wall time "
        f"{summary.get('wall_seconds_this_run', '-')} s.",
        "",
    ])


def plot_mnli_bars(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Figure 1a-style bars: MNLI accuracy per configuration (one bar per p), std error bars, baseline line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    confs = [c for c in summary["configurations"]
             if any(group_key(c["key"], p) in summary["groups"] for p in summary["top_ps"])]
    ps = summary["top_ps"]
    width = 0.8 / max(1, len(ps))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(confs) + 2), 4))
    x = np.arange(len(confs))
    values = []
    for i, p in enumerate(ps):
        groups = [summary["groups"].get(group_key(c["key"], p)) for c in confs]
        means = [(g["mnli"]["mean"] or 0.0) if g else 0.0 for g in groups]
        errs = [(g["mnli"]["std"] or 0.0) if g else 0.0 for g in groups]
        values += [m for m in means if m]
        ax.bar(x + (i - (len(ps) - 1) / 2) * width, means, width, yerr=errs, capsize=3, label=f"p = {p}")
    base = summary["baseline"]["mnli"]["mean"]
    if base is not None:
        ax.axhline(base, linestyle="--", color="black", linewidth=1, label="baseline")
        values.append(base)
    low = min(values) if values else 0.0
    ax.set_ylim(max(0.0, low - 10), 100)
    ax.set_xticks(x, [c["label"].replace(", ", "\n") for c in confs], fontsize=8)
    ax.set_ylabel("MNLI dev accuracy (%)")
    ax.set_title("MNLI accuracy per configuration (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def _as_result(group: Mapping[str, Any]) -> dict[str, Any]:
    """A group's seed means in the shape of :func:`hildif.model.evaluation.evaluate` (for plot_hans_bars)."""
    return {"hans": {"by_heuristic": {h: {c: group["by_heuristic"][h][c]["mean"] for c in CLASSES}
                                      for h in HEURISTICS}}}


def write_ablation_report(summary: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    paths = {"json": write_json_atomic(out / "ablation.json", summary),
             "markdown": write_text_atomic(out / "ablation.md", markdown(summary))}
    return {**paths, **write_figures(summary, out)}


def write_figures(summary: Mapping[str, Any], out_dir: str | Path, prefix: str = "") -> dict[str, Path]:
    """Figure 1a and one Figure 1b per p of ``summary`` (:func:`summarize`) as ``<out_dir>/<prefix>figure_1a.png``
    and ``<prefix>figure_1b_p<p>.png``; nothing when no group has finished."""
    out, paths = Path(out_dir), {}
    if not summary["groups"]:
        return paths
    paths["figure_1a"] = plot_mnli_bars(summary, out / f"{prefix}figure_1a.png")
    for p in summary["top_ps"]:
        results = {"baseline": summary["baseline_evaluation"]}
        for conf in summary["configurations"]:
            g = summary["groups"].get(group_key(conf["key"], p))
            if g:
                results[conf["label"]] = _as_result(g)
        if len(results) > 1:
            paths[f"figure_1b_p{p}"] = plot_hans_bars(results, out / f"{prefix}figure_1b_p{p}.png",
                                                      f"HANS accuracy, p = {p} (mean over seeds)")
    return paths
