"""The round report of one sync: ``round.json`` (everything) and ``round.md`` (what a person reads), atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hildif.utils.atomic import write_json_atomic, write_text_atomic

HANS_CLASSES = ("entailment", "non-entailment")


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def metrics_table(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Markdown rows: MNLI and HANS accuracy, and HANS (entailment, non-entailment) per heuristic, before/after; on a
    team's own task its held-out accuracy, macro F1, accuracy per label and per slice value."""
    lines = ["| metric | before | after | change |", "|---|---|---|---|"]

    def row(name: str, b: Any, a: Any) -> None:
        delta = "-" if b is None or a is None else f"{float(a) - float(b):+.2f}"
        lines.append(f"| {name} | {_pct(b)} | {_pct(a)} | {delta} |")

    if "task_accuracy" in after or "task_accuracy" in before:  # a team's own task: its held-out set
        row("held-out accuracy %", before.get("task_accuracy"), after.get("task_accuracy"))
        row("held-out macro F1 %", before.get("task_macro_f1"), after.get("task_macro_f1"))
        for label, acc in (after.get("task_by_label") or {}).items():
            row(f"label {label} %", (before.get("task_by_label") or {}).get(label), acc)
        for field, values in (after.get("task_by_slice") or {}).items():
            for value, acc in values.items():
                row(f"{field} = {value} %", ((before.get("task_by_slice") or {}).get(field) or {}).get(value), acc)
        return lines
    row("MNLI dev accuracy %", before.get("mnli_accuracy"), after.get("mnli_accuracy"))
    row("HANS accuracy %", before.get("hans_accuracy"), after.get("hans_accuracy"))
    for h, classes in sorted((after.get("hans_by_heuristic") or {}).items()):
        for cls in HANS_CLASSES:  # only the class accuracies; by_heuristic also holds counts ("n")
            if cls in classes:
                b = ((before.get("hans_by_heuristic") or {}).get(h) or {}).get(cls)
                row(f"HANS {h} / {cls} %", b, classes[cls])
    return lines


def serving_lines(summary: dict[str, Any]) -> list[str]:
    """Whether the sync serves its model and, if not, why (the promotion gate) and how to serve it anyway."""
    gate = summary.get("gate")
    if not gate:
        return []
    if gate.get("serve"):
        if "task" in (gate.get("checks") or {}):
            return [f"Served: **{summary['version']}** passed the promotion gate (the task's held-out accuracy held, "
                    "the served model moves forward)."]
        return [f"Served: **{summary['version']}** passed the promotion gate (MNLI held, HANS did not fall, the "
                "served model moves forward)."]
    lines = [f"Not served: the previous model {summary.get('previous_version') or '-'} keeps serving, because:", ""]
    lines += [f"- {reason}" for reason in gate.get("reasons") or []]
    lines += ["", f"An admin can serve it anyway: `hildif round promote --round {summary['round_id']} --version "
              f"{summary['version']}`."]
    return lines


# a gap in mean word overlap between two classes of the fine-tuning set from which the report says what it teaches
OVERLAP_GAP = 0.1


def overlap_lines(overlap: dict[str, Any] | None) -> list[str]:
    """What the set's word overlap per class (``fine_tuning_set.overlap_by_label``) teaches, as report lines; none
    for a single-text task. A gap of :data:`OVERLAP_GAP` or more between two classes is named: the set then rewards
    overlap as a cue for the class with more of it, which on HANS moves the threshold, not the heuristic."""
    if not overlap or not overlap.get("without_rehearsal"):
        return []
    lines = []
    for part in ("without_rehearsal", "with_rehearsal"):
        by = overlap.get(part)
        if not by:
            continue
        name = "the rated examples and their copies" if part == "without_rehearsal" else "with the rehearsal rows"
        line = (f"- Word overlap per class, {name} (share of the hypothesis's words found in the premise): "
                + ", ".join(f"{label} {v['mean']:.2f} (n = {v['n']})" for label, v in by.items()) + ".")
        means = {label: v["mean"] for label, v in by.items()}
        if len(means) > 1 and max(means.values()) - min(means.values()) >= OVERLAP_GAP:
            high, low = max(means, key=means.get), min(means, key=means.get)
            line += (f" The set pairs overlap with {high} ({means[high]:.2f} against {means[low]:.2f} for {low}): "
                     f"it teaches overlap as a cue for {high}, not the anchors' meaning"
                     + (" (`finetune.rehearsal_balance = contrast` adds rows that even it out)."
                        if part == "without_rehearsal" else "."))
        lines.append(line)
    return [*lines, ""]


def write_round_report(out_dir: str | Path, summary: dict[str, Any], aggregation=None) -> dict[str, Path]:
    """Write ``round.json`` and ``round.md`` into ``out_dir``; return their paths.

    ``summary`` is what :func:`hildif.rounds.sync.sync_round` assembled; ``aggregation`` the
    :class:`hildif.feedback.AggregationResult` (its Markdown table is included).
    """
    out = Path(out_dir)
    paths = {"json": write_json_atomic(out / "round.json", summary)}
    m = summary.get("metrics") or {}
    agreement = ((summary.get("aggregation") or {}).get("agreement") or {}).get("overall") or {}
    alpha = agreement.get("alpha")
    md = [
        f"# Round {summary['round_id']}, sync {summary['sync_id']}",
        "",
        f"Model {summary['base_version']} -> **{summary['version']}** (fine-tuned on {summary['n_augmented']} "
        f"augmented examples from {summary['n_scored_pairs']} rated influential examples; ratings digest "
        f"{summary['ratings_digest']}).",
        "",
        *([f"Pairs short of ratings: {summary['short_pairs']['summary']}.", ""] if summary.get("short_pairs") else []),
        f"Agreement (Krippendorff's ordinal alpha): {'n/a' if alpha is None else f'{alpha:.3f}'} over "
        f"{agreement.get('n_units', 0)} pairs rated by two or more annotators.",
        "",
        *(serving_lines(summary) + [""] if summary.get("gate") else []),
        "## Evaluation",
        "",
        *metrics_table(m.get("before") or {}, m.get("after") or {}),
        "",
        "## Fine-tuning",
        "",
        f"Steps {summary['train'].get('steps')}, first loss {summary['train'].get('first_loss')}, last loss "
        f"{summary['train'].get('last_loss')}, {summary['train'].get('seconds')} s.",
        "",
        "## Augmentation",
        "",
        "```json",
        __import__("json").dumps(summary.get("augmentation"), indent=2, default=str),
        "```",
        "",
    ]
    if summary.get("fine_tuning_set"):
        md += ["## Fine-tuning set", "", *overlap_lines(summary["fine_tuning_set"].get("overlap_by_label")), "```json",
               __import__("json").dumps(summary["fine_tuning_set"], indent=2, default=str), "```", ""]
    if aggregation is not None:
        md += [aggregation.to_markdown().replace("# Aggregated ratings", "## Aggregated ratings", 1)]
    paths["markdown"] = write_text_atomic(out / "round.md", "\n".join(md) + "\n")
    return paths
