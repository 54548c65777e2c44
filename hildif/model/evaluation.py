"""HANS and MNLI evaluation in the paper's layout, any task's evaluation per label and per slice, and the reports a
person reads (JSON, Markdown, PNG).

HANS accuracy is reported per heuristic x gold class, as in Figure 1c of the paper: for each of lexical overlap (LO),
subsequence (SUB) and constituent (CON) the pair (entailment accuracy, non-entailment accuracy), plus per subcase and
overall. MNLI is dev_matched 2-class accuracy. Naik et al.'s stress sets (:mod:`hildif.data.stress`, built from the
evaluated MNLI rows) get 2-class accuracy overall and per gold class, beside the same table of the unperturbed rows.
All accuracies are percentages.

Under torchrun (:mod:`hildif.distributed`) predictions are sharded: every rank cuts the examples into the same
length-sorted batches as one process, predicts every W-th batch and the probabilities are gathered, so every rank
gets the single-process tables; only rank 0 writes reports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hildif import distributed
from hildif.data.example import LABEL_NAMES, Example
from hildif.utils.atomic import write_json_atomic, write_text_atomic

HEURISTICS = ("lexical_overlap", "subsequence", "constituent")
SHORT = {"lexical_overlap": "LO", "subsequence": "SUB", "constituent": "CON"}


def _finish_accuracy_plot(fig, ax, title: str, path: str | Path) -> Path:
    """The common end of the accuracy bar plots: 0-100 % axis, title, legend, then an atomic PNG write to ``path``."""
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    return _save_figure(fig, path)


def _pct(correct: int, n: int) -> float | None:
    return round(100.0 * correct / n, 2) if n else None


def hans_table(examples: Sequence[Example], predicted: Sequence[int]) -> dict[str, Any]:
    """Accuracy of ``predicted`` labels (0/1 per example) on HANS examples.

    Returns ``{"accuracy", "n", "predicted_entailment", "by_heuristic": {h: {"entailment": %, "non-entailment": %,
    "n": ...}}, "by_subcase": {s: {"accuracy": %, "n", "heuristic", "gold"}}}``.
    """
    if len(examples) != len(predicted):
        raise ValueError(f"hans_table: {len(examples)} examples but {len(predicted)} predictions")
    cells: dict[tuple[str, int], list[int]] = {}
    subcases: dict[str, list[int]] = {}
    sub_info: dict[str, tuple[str, int]] = {}
    for ex, pred in zip(examples, predicted):
        h = ex.metadata.get("heuristic", "unknown")
        ok = int(int(pred) == ex.label)
        cells.setdefault((h, ex.label), []).append(ok)
        if ex.metadata.get("subcase"):
            subcases.setdefault(ex.metadata["subcase"], []).append(ok)
            sub_info[ex.metadata["subcase"]] = (h, ex.label)
    heuristics = [h for h in HEURISTICS if any(k[0] == h for k in cells)] + sorted(
        {k[0] for k in cells} - set(HEURISTICS)
    )
    by_heuristic = {}
    for h in heuristics:
        ent, non = cells.get((h, 1), []), cells.get((h, 0), [])
        by_heuristic[h] = {
            "entailment": _pct(sum(ent), len(ent)),
            "non-entailment": _pct(sum(non), len(non)),
            "n": len(ent) + len(non),
        }
    all_ok = [v for vs in cells.values() for v in vs]
    return {
        "accuracy": _pct(sum(all_ok), len(all_ok)),
        "n": len(all_ok),
        "predicted_entailment": _pct(int(np.sum(np.asarray(predicted) == 1)), len(predicted)),
        "by_heuristic": by_heuristic,
        "by_subcase": {
            s: {"accuracy": _pct(sum(v), len(v)), "n": len(v), "heuristic": sub_info[s][0],
                "gold": LABEL_NAMES[sub_info[s][1]]}
            for s, v in sorted(subcases.items())
        },
    }


def mnli_table(examples: Sequence[Example], predicted: Sequence[int]) -> dict[str, Any]:
    gold = np.array([e.label for e in examples])
    pred = np.asarray(predicted)
    return {
        "accuracy": _pct(int((gold == pred).sum()), len(gold)),
        "n": int(len(gold)),
        "majority_class": _pct(int(max((gold == 1).sum(), (gold == 0).sum())), len(gold)),
    }


def class_table(examples: Sequence[Example], predicted: Sequence[int]) -> dict[str, Any]:
    """2-class accuracy of ``predicted`` (0/1 per example) overall and per gold class: ``{"accuracy", "n",
    "predicted_entailment", "by_class": {"entailment": %, "non-entailment": %}, "n_by_class": {class: n}}`` (a
    class without examples: None)."""
    if len(examples) != len(predicted):
        raise ValueError(f"class_table: {len(examples)} examples but {len(predicted)} predictions")
    gold = np.array([e.label for e in examples], dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64).reshape(-1)
    ok = gold == pred
    by_class, n_by_class = {}, {}
    for c in (1, 0):  # entailment first, as HANS's tables
        mask = gold == c
        by_class[LABEL_NAMES[c]] = _pct(int(ok[mask].sum()), int(mask.sum()))
        n_by_class[LABEL_NAMES[c]] = int(mask.sum())
    return {"accuracy": _pct(int(ok.sum()), len(gold)), "n": int(len(gold)),
            "predicted_entailment": _pct(int((pred == 1).sum()), len(pred)), "by_class": by_class,
            "n_by_class": n_by_class}


def sharded_rows(clf, examples: Sequence[Example], compute, batch_size: int = 128, progress: bool = False
                 ) -> np.ndarray:
    """``compute(examples, batch_size=, progress=)`` (a :class:`Classifier` method giving one row per example in
    length-sorted batches: ``predict``, ``features``), sharded across ranks under torchrun.

    Each rank computes every W-th of the single-process run's length-sorted batches (the same batches, so the same
    padding and the same numbers), then the rows are gathered on every rank. One process: ``compute`` itself.
    """
    if not distributed.active() or not examples:
        return compute(examples, batch_size=batch_size, progress=progress)
    from hildif.model.classifier import length_sorted_batches

    batches = list(length_sorted_batches(clf.token_lengths(examples), batch_size))
    mine = [i for batch in distributed.shard_batches(batches) for i in batch]
    # ``compute`` re-sorts ``mine`` by length (stable): its batches are exactly this rank's share of ``batches``
    local = compute([examples[i] for i in mine], batch_size=batch_size, progress=progress and distributed.is_main())
    return distributed.gather_by_index(mine, local, len(examples))


def predict_probs(clf, examples: Sequence[Example], batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """``clf.predict(examples)`` ((n, num_labels) probabilities), sharded across ranks under torchrun
    (:func:`sharded_rows`)."""
    return sharded_rows(clf, examples, clf.predict, batch_size, progress)


def evaluate(
    clf,
    hans: Sequence[Example] | None,
    mnli: Sequence[Example] | None,
    batch_size: int = 128,
    progress: bool = False,
    stress: Mapping[str, Sequence[Example]] | None = None,
) -> dict[str, Any]:
    """Predict on HANS and MNLI dev (either may be None) and return both tables plus throughput (sharded across
    ranks under torchrun; every rank returns the same tables).

    ``stress``: named stress sets (:func:`hildif.data.stress.stress_sets` of the MNLI rows); each gets a
    :func:`class_table` under ``result["stress"][name]``, and the MNLI rows themselves one under
    ``result["stress_reference"]`` (the same rows unperturbed, from the MNLI predictions)."""
    result: dict[str, Any] = {"model_version": getattr(clf, "version", None)}
    predicted: dict[str, list[int]] = {}
    for name, examples, table in (("hans", hans, hans_table), ("mnli", mnli, mnli_table)):
        if not examples:
            continue
        result[name], predicted[name] = _timed_table(clf, examples, table, batch_size, progress)
    if stress:
        result["stress"] = {name: _timed_table(clf, rows, class_table, batch_size, progress)[0]
                            for name, rows in stress.items()}
        if mnli:
            result["stress_reference"] = class_table(mnli, predicted["mnli"])
    return result


def _timed_table(clf, examples: Sequence[Example], table, batch_size: int, progress: bool
                 ) -> tuple[dict[str, Any], list[int]]:
    """``table(examples, predictions)`` with the seconds and examples per second it took to predict, and the
    predictions (empty ``examples``: an empty table)."""
    t0 = time.perf_counter()
    probs = predict_probs(clf, examples, batch_size=batch_size, progress=progress) if examples else np.zeros((0, 2))
    seconds = time.perf_counter() - t0
    predictions = probs.argmax(1).tolist()
    out = table(examples, predictions)
    out["seconds"] = round(seconds, 2)
    out["examples_per_second"] = round(len(examples) / seconds, 1) if seconds else None
    return out, predictions


# ---------------------------------------------------------------------------------------------- reports
def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def figure_1c_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per named result: (entailment acc, non-entailment acc) for LO, SUB, CON; HANS and MNLI overall."""
    lines = [
        "| model | LO (ent, non-ent) | SUB (ent, non-ent) | CON (ent, non-ent) | HANS | MNLI dev |",
        "|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        hans = res.get("hans") or {}
        row = [name]
        for h in HEURISTICS:
            c = (hans.get("by_heuristic") or {}).get(h)
            row.append(f"({_cell(c['entailment'])}, {_cell(c['non-entailment'])})" if c else "-")
        row.append(_cell(hans.get("accuracy")))
        row.append(_cell((res.get("mnli") or {}).get("accuracy")))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


STRESS_NAMES = {"word_overlap": "word overlap", "negation": "negation", "length_mismatch": "length mismatch",
                "spelling_error": "spelling error"}


def stress_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Naik et al.'s stress sets, one row per (set, named result): n, overall and per gold class accuracy; the
    unperturbed MNLI rows first. Empty when no result has stress sets."""
    if not any(r.get("stress") for r in results.values()):
        return ""
    names = list(dict.fromkeys(n for r in results.values() for n in (r.get("stress") or {})))
    lines = ["| set | model | n | all | entailment | non-entailment |", "|---|---|---|---|---|---|"]
    for set_name in ["(MNLI dev rows, unperturbed)", *names]:
        for model, res in results.items():
            cell = (res.get("stress_reference") if set_name.startswith("(") else
                    (res.get("stress") or {}).get(set_name))
            if not cell:
                continue
            by = cell.get("by_class") or {}
            lines.append(f"| {STRESS_NAMES.get(set_name, set_name)} | {model} | {cell['n']} | "
                         f"{_cell(cell.get('accuracy'))} | {_cell(by.get('entailment'))} | "
                         f"{_cell(by.get('non-entailment'))} |")
    return "\n".join(lines) + "\n"


def subcase_markdown(result: Mapping[str, Any]) -> str:
    subs = (result.get("hans") or {}).get("by_subcase") or {}
    lines = ["| subcase | heuristic | gold | accuracy | n |", "|---|---|---|---|---|"]
    for s, c in subs.items():
        lines.append(f"| {s} | {c['heuristic']} | {c['gold']} | {_cell(c['accuracy'])} | {c['n']} |")
    return "\n".join(lines) + "\n"


def plot_hans_bars(results: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "HANS") -> Path:
    """Figure 1b-style grouped bar chart: accuracy per heuristic x class for each result, 50% chance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(h, cls) for h in HEURISTICS for cls in ("entailment", "non-entailment")]
    names = list(results)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(9, 4.2))
    x = np.arange(len(groups))
    for i, name in enumerate(names):
        by_h = (results[name].get("hans") or {}).get("by_heuristic") or {}
        vals = [(by_h.get(h) or {}).get(cls) or 0.0 for h, cls in groups]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=name)
    ax.axhline(50, linestyle="--", color="black", linewidth=1, label="chance")
    ax.set_xticks(x, [f"{SHORT[h]}\n{cls}" for h, cls in groups])
    return _finish_accuracy_plot(fig, ax, title, path)


def _subcase_order(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every HANS subcase of the results, by heuristic (LO, SUB, CON), then gold class, then name."""
    info: dict[str, tuple[int, str]] = {}
    for res in results.values():
        for name, cell in ((res.get("hans") or {}).get("by_subcase") or {}).items():
            h = cell.get("heuristic")
            info.setdefault(name, (HEURISTICS.index(h) if h in HEURISTICS else len(HEURISTICS), str(cell.get("gold"))))
    return sorted(info, key=lambda name: (*info[name], name))


def plot_evaluation(results: Mapping[str, Mapping[str, Any]], path: str | Path, title: str,
                    legend: Mapping[str, str] | None = None) -> Path:
    """The evaluation at a glance, one bar per named result (e.g. before and after) in each group: HANS accuracy per
    heuristic x class, HANS overall and MNLI dev (top panel, 50 % chance line), and HANS per subcase (bottom panel,
    when the results have subcases). The value of each bar of the top panel is written on it. ``legend``: a result's
    name in the legend (default: its name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    legend = {name: (legend or {}).get(name, name) for name in names}
    groups = [(h, cls) for h in HEURISTICS for cls in ("entailment", "non-entailment")]
    subcases = _subcase_order(results)
    fig, axes = plt.subplots(2 if subcases else 1, 1, figsize=(12, 9.5 if subcases else 4.6), squeeze=False)
    ax = axes[0][0]
    labels = [f"{SHORT[h]}\n{cls}" for h, cls in groups] + ["HANS\nall", "MNLI\ndev"]
    width = 0.8 / max(1, len(names))
    x = np.arange(len(labels))
    for i, name in enumerate(names):
        res = results[name]
        by_h = (res.get("hans") or {}).get("by_heuristic") or {}
        vals = [(by_h.get(h) or {}).get(cls) for h, cls in groups]
        vals += [(res.get("hans") or {}).get("accuracy"), (res.get("mnli") or {}).get("accuracy")]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, [v or 0.0 for v in vals], width, label=legend[name])
        ax.bar_label(bars, labels=["" if v is None else f"{v:.1f}" for v in vals], fontsize=7, padding=1)
    ax.axhline(50, linestyle="--", color="black", linewidth=1, label="chance")
    ax.axvline(len(groups) - 0.5, color="grey", linewidth=0.8)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 108)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if subcases:
        ax = axes[1][0]
        x = np.arange(len(subcases))
        for i, name in enumerate(names):
            subs = (results[name].get("hans") or {}).get("by_subcase") or {}
            ax.bar(x + (i - (len(names) - 1) / 2) * width,
                   [(subs.get(s) or {}).get("accuracy") or 0.0 for s in subcases], width, label=legend[name])
        ax.axhline(50, linestyle="--", color="black", linewidth=1)
        ax.set_xticks(x, subcases, rotation=70, ha="right", fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title("HANS per subcase", fontsize=10)
    return _save_figure(fig, path, title)


def _save_figure(fig, path: str | Path, title: str | None = None) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically, and close it; ``title`` also goes into the PNG's ``Title``
    text field."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight", metadata={"Title": title} if title else None)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(
    results: Mapping[str, Mapping[str, Any]] | Mapping[str, Any],
    out_dir: str | Path,
    title: str = "evaluation",
    extra: Mapping[str, Any] | None = None,
    plot_title: str | None = None,
    legend: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write ``<title>.json``, ``<title>.md`` and ``<title>.png`` into ``out_dir``; return their paths.

    ``results`` is either one :func:`evaluate` result or a mapping of names (e.g. "before", "after") to results.
    ``plot_title``: the plot's title (default: the results' names, e.g. ``before vs after``); ``legend``: a result's
    name in the plot's legend (default: its name).
    Under torchrun only rank 0 writes; the others return the same paths after it has written them.
    """
    if "hans" in results or "mnli" in results or "task" in results:
        results = {"model": results}
    out = Path(out_dir)
    if not distributed.is_main():
        distributed.barrier()
        names = {"json": f"{title}.json", "markdown": f"{title}.md"}
        if any(r.get("hans") or r.get("task") for r in results.values()):
            names["plot"] = f"{title}.png"
        return {k: out / v for k, v in names.items()}
    paths = {
        "json": write_json_atomic(out / f"{title}.json", {"title": title, "results": results, **(extra or {})}),
    }
    md = [f"# {title}", ""]
    has_task = any(r.get("task") for r in results.values())
    if any(r.get("hans") or r.get("mnli") for r in results.values()) or not has_task:
        md += ["HANS accuracy per heuristic: (entailment %, non-entailment %); MNLI dev_matched 2-class accuracy %.",
               "", figure_1c_markdown(results)]
    if has_task:
        md += ["## accuracy per label (held-out set, %)", "", task_markdown(results)]
    stress = stress_markdown(results)
    if stress:
        md += ["## stress tests (Naik et al. 2018, from the MNLI dev rows; 2-class accuracy %)", "", stress]
    for name, res in results.items():
        if (res.get("hans") or {}).get("by_subcase"):
            md += [f"## HANS per subcase: {name}", "", subcase_markdown(res)]
    if extra:
        md += ["## details", "", "```json", json.dumps(extra, indent=2, default=str), "```", ""]
    paths["markdown"] = write_text_atomic(out / f"{title}.md", "\n".join(md))
    plot_title = plot_title or " vs ".join(results)
    if any(r.get("hans") for r in results.values()):
        paths["plot"] = plot_evaluation(results, out / f"{title}.png", plot_title, legend)
    elif has_task:
        paths["plot"] = plot_label_bars(results, out / f"{title}.png", plot_title)
    distributed.barrier()
    return paths


# ---------------------------------------------------------------------------------------------- any task
NO_VALUE = "(none)"


def _slice_value(value: Any) -> str:
    if value is None or value == "":
        return NO_VALUE
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def classification_table(
    examples: Sequence[Example], predicted: Sequence[int], label_names: Sequence[str], slices: Sequence[str] = (),
) -> dict[str, Any]:
    """Accuracy of ``predicted`` class indices on any task's examples, overall, per label and per slice.

    Returns ``{"accuracy", "n", "macro_f1", "majority_class", "by_label": {name: {"n", "accuracy" (= recall),
    "precision", "f1", "predicted"}}, "confusion": {gold name: {predicted name: count}}, "by_slice": {field: {value:
    {"accuracy", "n", "by_label": {name: accuracy}}}}}``. A slice is any metadata field (e.g. ``genre``); examples
    without it fall in the value ``(none)``.
    """
    if len(examples) != len(predicted):
        raise ValueError(f"classification_table: {len(examples)} examples but {len(predicted)} predictions")
    k = len(label_names)
    gold = np.array([e.label for e in examples], dtype=np.int64)
    pred = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if len(gold) and (gold.min() < 0 or gold.max() >= k or pred.min() < 0 or pred.max() >= k):
        raise ValueError(f"classification_table: a label or prediction outside the {k} classes")
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (gold, pred), 1)
    by_label, f1s = {}, []
    for c, name in enumerate(label_names):
        tp, n, n_pred = int(confusion[c, c]), int(confusion[c].sum()), int(confusion[:, c].sum())
        recall, precision = _pct(tp, n), _pct(tp, n_pred)
        f1 = _pct(2 * tp, n + n_pred)
        if f1 is not None:
            f1s.append(f1)
        by_label[name] = {"n": n, "accuracy": recall, "precision": precision, "f1": f1, "predicted": n_pred}
    ok = gold == pred
    by_slice: dict[str, dict[str, Any]] = {}
    for field in slices:
        groups: dict[str, list[int]] = {}
        for i, ex in enumerate(examples):
            groups.setdefault(_slice_value(ex.metadata.get(field)), []).append(i)
        by_slice[field] = {}
        for value in sorted(groups):
            idx = np.array(groups[value])
            by_slice[field][value] = {
                "accuracy": _pct(int(ok[idx].sum()), len(idx)), "n": int(len(idx)),
                "by_label": {name: _pct(int(ok[idx][gold[idx] == c].sum()), int((gold[idx] == c).sum()))
                             for c, name in enumerate(label_names) if (gold[idx] == c).any()},
            }
    return {
        "accuracy": _pct(int(ok.sum()), len(gold)),
        "n": int(len(gold)),
        "macro_f1": round(sum(f1s) / len(f1s), 2) if f1s else None,
        "majority_class": _pct(int(confusion.sum(1).max()) if len(gold) else 0, len(gold)),
        "by_label": by_label,
        "confusion": {g: {p: int(confusion[i, j]) for j, p in enumerate(label_names)}
                      for i, g in enumerate(label_names)},
        "by_slice": by_slice,
    }


def evaluate_task(
    clf, examples: Sequence[Example], label_names: Sequence[str] | None = None, slices: Sequence[str] = (),
    batch_size: int = 128, progress: bool = False,
) -> dict[str, Any]:
    """Predict on a task's held-out ``examples`` and return ``{"model_version", "task": classification_table}``
    (label names default to the classifier's)."""
    names = list(label_names or clf.label_names)
    t0 = time.perf_counter()
    probs = predict_probs(clf, examples, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - t0
    table = classification_table(examples, probs.argmax(1).tolist() if len(examples) else [], names, slices)
    table["labels"] = names
    table["seconds"] = round(seconds, 2)
    return {"model_version": getattr(clf, "version", None), "task": table}


def task_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Per-label and per-slice accuracy tables, one column per named result (e.g. before / after)."""
    tables = {name: res["task"] for name, res in results.items() if res.get("task")}
    if not tables:
        return ""
    names = list(tables)
    first = tables[names[0]]
    head = " | ".join(names)
    lines = [f"| label | n | {head} |", "|---|---|" + "---|" * len(names)]
    for label, cell in first["by_label"].items():
        accs = " | ".join(_cell(((t["by_label"].get(label) or {}).get("accuracy"))) for t in tables.values())
        lines.append(f"| {label} | {cell['n']} | {accs} |")
    overall = " | ".join(_cell(t.get("accuracy")) for t in tables.values())
    macro = " | ".join(_cell(t.get("macro_f1")) for t in tables.values())
    lines += [f"| **all** | {first['n']} | {overall} |", f"| macro F1 | | {macro} |", ""]
    for field, values in (first.get("by_slice") or {}).items():
        lines += [f"### per {field}", "", f"| {field} | n | {head} |", "|---|---|" + "---|" * len(names)]
        for value, cell in values.items():
            accs = " | ".join(_cell((((t.get("by_slice") or {}).get(field) or {}).get(value) or {}).get("accuracy"))
                              for t in tables.values())
            lines.append(f"| {value} | {cell['n']} | {accs} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_label_bars(results: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "accuracy per label"
                    ) -> Path:
    """Grouped bar chart: accuracy per label of a task for each named result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = {name: res["task"] for name, res in results.items() if res.get("task")}
    labels = list(next(iter(tables.values()))["by_label"]) if tables else []
    width = 0.8 / max(1, len(tables))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels) + 2), 4.2))
    x = np.arange(len(labels))
    for i, (name, table) in enumerate(tables.items()):
        vals = [(table["by_label"].get(lab) or {}).get("accuracy") or 0.0 for lab in labels]
        ax.bar(x + (i - (len(tables) - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x, labels, rotation=20)
    return _finish_accuracy_plot(fig, ax, title, path)
