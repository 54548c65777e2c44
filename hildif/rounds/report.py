"""The round report of one sync: ``round.json`` (everything, for programs), ``round.md`` (what a person reads: tables
and sentences, no raw JSON) and ``round.html`` (the same page with its plots embedded,
:mod:`hildif.rounds.html_report`), written atomically.

Every table of ``round.md`` says in the sentence above it how its numbers are rounded ("2 decimals", "whole
numbers"), and no number in it has more digits than that. The sections: what the round did and the gate's decision,
what to do next, the evaluation before/after, the ratings (each rater's score, the aggregate, the spread per pair;
Krippendorff's alpha per anchor), the fine-tuning set (rows per kind and per class, a few rows of each kind; all of
them in ``fine_tuning_set.csv``, :mod:`hildif.rounds.setfile`), the training run and the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hildif.utils.atomic import write_json_atomic, write_text_atomic

HANS_CLASSES = ("entailment", "non-entailment")
SCALE = "1 = very different, 2 = different, 3 = can't decide, 4 = similar, 5 = very similar"
TEXT_CHARS = 110  # texts in tables are cut to this many characters (the whole texts: round.json, the set's file)
SAMPLES_PER_KIND = 3


# ---------------------------------------------------------------------------------------------- building blocks
def num(value: Any, decimals: int = 2, sign: bool = False) -> str:
    """``value`` rounded to ``decimals`` places (``-`` for None)."""
    if value is None:
        return "-"
    return f"{float(value):{'+' if sign else ''}.{decimals}f}"


def decimals_note(decimals: int) -> str:
    return "whole numbers" if decimals == 0 else f"{decimals} decimal{'s' if decimals != 1 else ''}"


def cell_text(text: Any, limit: int = TEXT_CHARS) -> str:
    """A text for a Markdown table cell: one line, cut to ``limit`` characters, Markdown's special characters
    escaped (so a text never becomes a link, emphasis, code or a column)."""
    s = " ".join(str(text or "").split())
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    for ch in "\\`*_[]<>|#":
        s = s.replace(ch, "\\" + ch)
    return s


@dataclass
class Table:
    """A Markdown table with the sentence above it, which declares how its numbers are rounded."""

    caption: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [self.caption, "", "| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        return [*out, ""]


def link(path: str | Path, base: str | Path) -> str:
    """``path`` relative to the folder ``base`` (as a Markdown link target, forward slashes)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


# ---------------------------------------------------------------------------------------------- evaluation
def metrics_table(before: dict[str, Any], after: dict[str, Any]) -> Table:
    """MNLI and HANS accuracy, HANS (entailment, non-entailment) per heuristic and each stress set's accuracy overall
    and per gold class, before/after and the change; on a team's own task its held-out accuracy, macro F1, accuracy per label and per slice value."""
    table = Table("Accuracy in %, 2 decimals; change = after - before, in points.",
                  ["metric", "before", "after", "change"])

    def row(name: str, b: Any, a: Any) -> None:
        delta = "-" if b is None or a is None else num(float(a) - float(b), sign=True)
        table.rows.append([name, num(b), num(a), delta])

    if "task_accuracy" in after or "task_accuracy" in before:  # a team's own task: its held-out set
        row("held-out accuracy", before.get("task_accuracy"), after.get("task_accuracy"))
        row("held-out macro F1", before.get("task_macro_f1"), after.get("task_macro_f1"))
        for label, acc in (after.get("task_by_label") or {}).items():
            row(f"label {cell_text(label)}", (before.get("task_by_label") or {}).get(label), acc)
        for fld, values in (after.get("task_by_slice") or {}).items():
            for value, acc in values.items():
                b = ((before.get("task_by_slice") or {}).get(fld) or {}).get(value)
                row(f"{cell_text(fld)} = {cell_text(value)}", b, acc)
        return table
    row("MNLI dev", before.get("mnli_accuracy"), after.get("mnli_accuracy"))
    row("HANS (all)", before.get("hans_accuracy"), after.get("hans_accuracy"))
    for h, classes in sorted((after.get("hans_by_heuristic") or {}).items()):
        for cls in HANS_CLASSES:  # only the class accuracies; by_heuristic also holds counts ("n")
            if cls in classes:
                b = ((before.get("hans_by_heuristic") or {}).get(h) or {}).get(cls)
                row(f"HANS {h.replace('_', ' ')}, {cls}", b, classes[cls])
    b_stress = before.get("stress") or {}
    for name, cell in (after.get("stress") or {}).items():  # Naik et al.'s stress sets, from the MNLI dev rows
        b_cell = b_stress.get(name) or {}
        row(f"stress {name.replace('_', ' ')} (all)", b_cell.get("accuracy"), cell.get("accuracy"))
        for cls in HANS_CLASSES:
            row(f"stress {name.replace('_', ' ')}, {cls}", (b_cell.get("by_class") or {}).get(cls),
                (cell.get("by_class") or {}).get(cls))
    return table


def headline_sentence(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The before/after numbers that matter most, in one sentence."""
    def change(name: str, key: str) -> str | None:
        b, a = before.get(key), after.get(key)
        if b is None or a is None:
            return None
        return f"{name} {num(b)} -> {num(a)} % ({num(float(a) - float(b), sign=True)} points)"

    parts = [p for p in (change("held-out accuracy", "task_accuracy"), change("MNLI dev", "mnli_accuracy"),
                         change("HANS", "hans_accuracy")) if p]
    return ("Accuracy (2 decimals): " + "; ".join(parts) + ".") if parts else ""


# ---------------------------------------------------------------------------------------------- the gate
def serving_lines(summary: dict[str, Any]) -> list[str]:
    """Whether the sync serves its model and, if not, why (the promotion gate) and how to serve it anyway."""
    gate = summary.get("gate")
    if not gate:
        return []
    promoted = summary.get("promoted")
    if promoted:
        return [f"Promoted: an admin served **{summary['version']}** at {promoted.get('at')} (was "
                f"{promoted.get('previous_version') or 'none'}), although the promotion gate held it back because:",
                "", *[f"- {reason}" for reason in gate.get("reasons") or []]]
    if gate.get("serve"):
        if "task" in (gate.get("checks") or {}):
            return [f"Served: **{summary['version']}** passed the promotion gate (the task's held-out accuracy held, "
                    "the served model moves forward)."]
        held = ", the stress sets held" if ((gate.get("checks") or {}).get("stress") or {}).get("enabled") else ""
        return [f"Served: **{summary['version']}** passed the promotion gate (MNLI held, HANS did not fall{held}, "
                "the served model moves forward)."]
    lines = [f"Not served: the previous model {summary.get('previous_version') or '-'} keeps serving, because:", ""]
    lines += [f"- {reason}" for reason in gate.get("reasons") or []]
    lines += ["", f"An admin can serve it anyway: `hildif round promote --round {summary['round_id']} --version "
              f"{summary['version']}`."]
    return lines


CHECK_NAMES = {"mnli": "MNLI dev may fall at most", "hans": "HANS must change by at least",
               "task": "held-out accuracy may fall at most"}


def gate_table(gate: dict[str, Any]) -> Table | None:
    """The gate's checks: the numbers each used, the allowance and whether it passed."""
    checks = gate.get("checks") or {}
    table = Table("The promotion gate's checks; accuracy in %, 2 decimals.",
                  ["check", "before", "after", "change", "allowed", "passed"])
    for name in ("mnli", "hans", "task"):
        c = checks.get(name)
        if not c:
            continue
        if not c.get("enabled"):
            table.rows.append([name.upper() if name != "task" else "task", "-", "-", "-", "off", "-"])
            continue
        if c.get("skipped"):
            table.rows.append([name, "-", "-", "-", "-", f"skipped: {c['skipped']}"])
            continue
        b, a = c.get("before"), c.get("after")
        limit = c.get("max_drop", c.get("min_gain"))
        allowed = (f"{CHECK_NAMES[name]} {num(limit)} points" if limit is not None else "-")
        delta = "-" if b is None or a is None else num(float(a) - float(b), sign=True)
        table.rows.append([name.upper() if name != "task" else "task", num(b), num(a), delta, allowed,
                           "yes" if c.get("ok") else "**no**"])
    stress = checks.get("stress") or {}
    for name, c in (stress.get("sets") or {}).items():  # decide only with finetune.gate_stress_max_drop set
        label = f"stress {name.replace('_', ' ')}"
        if c.get("skipped"):
            table.rows.append([label, num(c.get("before")), num(c.get("after")), "-", "-", f"skipped: {c['skipped']}"])
            continue
        if stress.get("enabled"):
            allowed, passed = (f"may fall at most {num(stress.get('max_drop'))} points",
                               "yes" if c.get("ok") else "**no**")
        else:
            allowed, passed = "reported only (finetune.gate_stress_max_drop off)", "-"
        table.rows.append([label, num(c.get("before")), num(c.get("after")),
                           num(float(c["after"]) - float(c["before"]), sign=True), allowed, passed])
    lineage = checks.get("lineage")
    if lineage:
        served = lineage.get("served") or "nothing"
        table.rows.append(["lineage", "-", "-", "-", f"moves forward from {served}",
                           "-" if not lineage.get("enabled") else ("yes" if lineage.get("ok") else "**no**")])
    return table if table.rows else None


def next_steps(summary: dict[str, Any], flagged: int, gap: bool) -> list[str]:
    """What a person does next, as bullets."""
    r, v = summary["round_id"], summary["version"]
    steps = []
    if summary.get("served") or summary.get("promoted"):
        steps.append(f"- {v} is served now (the ML backend answers with it). Start the next round from it: "
                     "`hildif round start --round <next>`; see where this one stands: "
                     f"`hildif round status --round {r}`.")
    else:
        steps.append(f"- {v} is kept but not served. Serve it anyway with `hildif round promote --round {r} --version "
                     f"{v}`, or change or add ratings in Label Studio and `hildif round sync --round {r}` again.")
    if flagged:
        spread = summary["aggregation"].get("review_spread", 2)
        steps.append(f"- {flagged} pair(s) are flagged (raters' scores {spread} or more apart, below): worth a second "
                     "look before trusting their copies.")
    if gap:
        steps.append("- The fine-tuning set ties word overlap to one class (below): `--set "
                     "finetune.rehearsal_balance=contrast` with `finetune.rehearsal_ratio` > 0 evens it out.")
    if (summary.get("short_pairs") or {}).get("n_short"):
        steps.append(f"- {summary['short_pairs'].get('summary')}.")
    steps.append(f"- Inspect what the model was fine-tuned on: `hildif round show --round {r} --fine-tuning-set` "
                 "(or the CSV file below).")
    return steps


# ---------------------------------------------------------------------------------------------- ratings
def ratings_tables(summary: dict[str, Any]) -> tuple[list[str], list[tuple[str, Table]]]:
    """A sentence on agreement and, per anchor, its text and a table: one row per rated example (each rater's score,
    the aggregate, the spread), with Krippendorff's alpha over the anchor's pairs."""
    agg = summary.get("aggregation") or {}
    texts = summary.get("texts") or {}
    pairs = agg.get("pairs") or []
    raters = sorted({r["annotator"] for p in pairs for r in p.get("ratings") or []})
    overall = (agg.get("agreement") or {}).get("overall") or {}
    alpha = overall.get("alpha")
    lines = [f"{len(pairs)} pairs (an anchor and one of its influential training examples) rated by {len(raters)} "
             f"{'person' if len(raters) == 1 else 'people'} on the scale {SCALE}; aggregated by "
             f"{agg.get('method', 'median')} over at least {agg.get('min_raters', 1)} rater(s). Agreement "
             f"(Krippendorff's ordinal alpha, 3 decimals; 1 = full agreement, 0 = chance): "
             f"{'n/a' if alpha is None else num(alpha, 3)} over {overall.get('n_units', 0)} pairs rated by two or "
             "more.",
             ""]
    short = {name: f"R{i + 1}" for i, name in enumerate(raters)}
    if raters:
        lines += ["Raters: " + ", ".join(f"{short[n]} = {cell_text(n)}" for n in raters) + ".", ""]
    per_anchor = (agg.get("agreement") or {}).get("per_anchor") or {}
    tables: list[tuple[str, Table]] = []
    for anchor_id in dict.fromkeys(p["anchor_id"] for p in pairs):
        anchor = (texts.get("anchors") or {}).get(anchor_id) or {}
        a_alpha = (per_anchor.get(anchor_id) or {}).get("alpha")
        heading = f"Anchor {pair_cell(anchor_id, anchor, limit=2 * TEXT_CHARS)}"
        table = Table(f"Each rater's score as given (whole numbers); aggregate rounded to 2 decimals; spread = highest "
                      f"- lowest score (0: all agree; {agg.get('review_spread', 2)} or more: flagged). Agreement over "
                      f"this anchor's pairs (alpha, 3 decimals): {'n/a' if a_alpha is None else num(a_alpha, 3)}.",
                      ["influential example", *[short[n] for n in raters], "aggregate", "spread", "agreement"])
        for p in (p for p in pairs if p["anchor_id"] == anchor_id):
            scores = {r["annotator"]: r["score"] for r in p.get("ratings") or []}
            example = (texts.get("examples") or {}).get(p["example_id"]) or {}
            spread = p.get("spread")
            agreement = ("pending" if p.get("pending") else "flagged" if p.get("flagged") else
                         "all agree" if spread == 0 else f"{spread} apart" if spread is not None else "-")
            table.rows.append([
                pair_cell(p["example_id"], example), *[str(int(scores[n])) if n in scores else "-" for n in raters],
                "pending" if p.get("pending") else num(p.get("score")), "-" if spread is None else str(int(spread)),
                agreement])
        tables.append((heading, table))
    return lines, tables


def pair_cell(example_id: str, text: dict[str, Any], limit: int = TEXT_CHARS) -> str:
    """``id (label): premise / hypothesis`` for a table cell (each text cut to about ``limit / 2`` characters)."""
    label = f" ({text['label']})" if text.get("label") else ""
    body = cell_text(text.get("premise"), limit // 2 + 10)
    if text.get("hypothesis"):
        body += " / " + cell_text(text["hypothesis"], limit // 2)
    return f"`{example_id}`{label}: {body}" if body else f"`{example_id}`"


# ---------------------------------------------------------------------------------------------- the set
# a gap in mean word overlap between two classes of the fine-tuning set from which the report says what it teaches
OVERLAP_GAP = 0.1


def overlap_gap(overlap: dict[str, Any] | None) -> bool:
    by = (overlap or {}).get("without_rehearsal") or {}
    means = [v["mean"] for v in by.values()]
    return len(means) > 1 and max(means) - min(means) >= OVERLAP_GAP


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
        line = (f"- Word overlap per class, {name} (share of the hypothesis's words found in the premise, 2 decimals): "
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


def set_section(summary: dict[str, Any], rows: Sequence | None, set_link: str | None) -> list[str]:
    """The fine-tuning set: rows per kind and per class, how augmentation and rehearsal went, a few rows of each
    kind (``rows``: :class:`hildif.rounds.setfile.SetRow`)."""
    from hildif.rounds.setfile import KINDS, sample_rows

    fts = summary.get("fine_tuning_set") or {}
    parts, size = fts.get("parts") or {}, fts.get("size") or summary.get("n_augmented") or 0
    lines = [f"The model was fine-tuned on {size} examples"
             + (f", all listed in [{Path(set_link).name}]({set_link}) (one row each: texts, label, kind, source, "
                f"score, augmenter; `hildif round show --round {summary['round_id']} --fine-tuning-set` prints it)"
                if set_link else "")
             + ".", ""]
    kinds = Table("Rows per kind: whole numbers; share of the set in %, 1 decimal.", ["kind", "rows", "share"])
    for name, part in KINDS.values():
        if part in parts:
            kinds.rows.append([name, str(parts[part]), num(100.0 * parts[part] / size if size else 0.0, 1)])
    lines += kinds.lines()
    labels = fts.get("labels") or {}
    if labels:
        by_label = Table("Rows per class: whole numbers.", ["class", "rows"])
        by_label.rows = [[cell_text(k), str(v)] for k, v in labels.items()]
        lines += by_label.lines()
    lines += overlap_lines(fts.get("overlap_by_label"))
    aug = summary.get("augmentation") or {}
    if aug:
        made = ", ".join(f"{k} {v}" for k, v in (aug.get("by_augmenter") or {}).items()) or "none"
        dropped = ", ".join(f"{k} {v}" for k, v in (aug.get("dropped") or {}).items() if v) or "none"
        lines += [f"Augmentation: {aug.get('requested', 0)} copies asked for {aug.get('items_with_copies', 0)} of "
                  f"{aug.get('items', 0)} rated pairs, {aug.get('produced', 0)} made (by augmenter: {made}; "
                  f"candidates dropped: {dropped}); {len(aug.get('shortfall') or [])} pair(s) got fewer copies than "
                  "asked.", ""]
    reh = fts.get("rehearsal") or {}
    if reh:
        lines += [f"Rehearsal: {parts.get('rehearsal', 0)} original training rows (ratio {reh.get('ratio')}, balance "
                  f"{reh.get('balance')}), drawn from {reh.get('pool', 0)} rows without the {reh.get('excluded', 0)} "
                  "rated ones.", ""]
    syn = fts.get("syntactic") or {}
    if syn:
        ops = ", ".join(f"{k} {v}" for k, v in (syn.get("by_operation") or {}).items()) or "none"
        lines += [f"Syntactic pairs: {syn.get('produced', 0)} of {syn.get('requested', 0)} asked (by operation: "
                  f"{ops}).", ""]
    if rows:
        sample = Table(f"A few rows of each kind (up to {SAMPLES_PER_KIND}; row = position in the set, whole number); "
                       f"score 2 decimals; texts cut to about {TEXT_CHARS // 2} characters.",
                       ["row", "kind", "id", "source", "score", "augmenter", "label", "premise", "hypothesis"])
        for r in sample_rows(rows, SAMPLES_PER_KIND):
            sample.rows.append([str(r.position), KINDS[r.kind][0], f"`{r.id}`",
                                f"`{r.source_id}`" if r.source_id != r.id else "(itself)", num(r.score),
                                cell_text(r.augmenter) or "-", cell_text(r.label),
                                cell_text(r.premise, TEXT_CHARS // 2 + 10), cell_text(r.hypothesis, TEXT_CHARS // 2)])
        lines += ["### Samples", "", *sample.lines()]
    return lines


# ---------------------------------------------------------------------------------------------- the whole page
def round_body(summary: dict[str, Any], rows: Sequence | None, report_dir: str | Path, link_base: str | Path,
               level: int = 2) -> list[str]:
    """The report's sections (headings at ``level``), links relative to ``link_base`` (the folder of the file that
    holds them: the sync's folder for round.md, the demo's for demo.md)."""
    from hildif.rounds.setfile import SET_FILE

    h = "#" * level
    report_dir = Path(report_dir)
    m = summary.get("metrics") or {}
    before, after = m.get("before") or {}, m.get("after") or {}
    agg = summary.get("aggregation") or {}
    flagged = int(agg.get("n_flagged") or 0)
    fts = summary.get("fine_tuning_set") or {}
    gap = overlap_gap(fts.get("overlap_by_label"))
    raters = {r["annotator"] for p in agg.get("pairs") or [] for r in p.get("ratings") or []}

    def file_link(name: str) -> str | None:
        return link(report_dir / name, link_base) if (report_dir / name).exists() else None

    size = fts.get("size", summary.get("n_augmented"))
    lines = [f"Model {summary['base_version']} -> **{summary['version']}**: fine-tuned on {size} examples made from "
             f"{summary['n_scored_pairs']} rated pairs ({len(raters)} rater(s); ratings digest "
             f"{summary['ratings_digest']}).", ""]
    sentence = headline_sentence(before, after)
    lines += [sentence, ""] if sentence else []
    if (summary.get("short_pairs") or {}).get("n_short"):
        lines += [f"Pairs short of ratings: {summary['short_pairs']['summary']}.", ""]
    lines += [f"{h} Decision", ""]
    lines += [*serving_lines(summary), ""] if summary.get("gate") else ["No promotion gate ran.", ""]
    table = gate_table(summary.get("gate") or {})
    lines += table.lines() if table else []
    lines += [f"{h} What to do next", "", *next_steps(summary, flagged, gap), ""]
    lines += [f"{h} Evaluation", "", *metrics_table(before, after).lines()]
    plot = file_link("evaluation.png")
    if plot:
        what = ("accuracy per label" if "task_accuracy" in after or "task_accuracy" in before
                else "HANS per heuristic and class, HANS and MNLI")
        lines += [f"![{what}, before and after]({plot})", ""]
    details = file_link("evaluation.md")
    if details:
        lines += [f"Per HANS subcase and the sample sizes: [evaluation.md]({details}).", ""]
    rating_lines, tables = ratings_tables(summary)
    lines += [f"{h} Ratings", "", *rating_lines]
    for heading, t in tables:
        lines += [f"{h}# {heading}", "", *t.lines()]
    lines += [f"{h} Fine-tuning set", "", *set_section(summary, rows, file_link(SET_FILE))]
    train = summary.get("train") or {}
    t = Table("Training: steps and examples as whole numbers; losses 3 decimals; seconds 1 decimal.",
              ["steps", "examples seen", "first loss", "last loss", "seconds"])
    t.rows.append([str(train.get("steps", "-")), str(train.get("examples_seen", "-")), num(train.get("first_loss"), 3),
                   num(train.get("last_loss"), 3), num(train.get("seconds"), 1)])
    lines += [f"{h} Training", "", *t.lines()]
    lines += [f"{h} Files and links", "", *file_lines(summary, report_dir, link_base), ""]
    return lines


REPORT_LINKS = (("round.md", "this report as Markdown"), ("round.html", "this report as one page with its plots"),
                ("round.json", "everything above, for programs"), ("evaluation.md", "the evaluation's tables"),
                ("evaluation.json", "the evaluation's numbers"), ("fine_tuning_set.csv", "the fine-tuning set"))


def file_lines(summary: dict[str, Any], report_dir: Path, link_base: str | Path) -> list[str]:
    """Bullets: the report's files, the model version's folder, the Label Studio project."""
    out = [f"- [{name}]({link(report_dir / name, link_base)}): {what}" for name, what in REPORT_LINKS
           if (report_dir / name).exists() or name in ("round.md", "round.html")]  # these two: being written
    model_dir = summary.get("model_dir")
    if model_dir and (Path(model_dir) / "hildif.json").exists():
        out.append(f"- model {summary['version']}: [{Path(model_dir).name}/hildif.json]"
                   f"({link(Path(model_dir) / 'hildif.json', link_base)}) (its training metadata and lineage)")
    ls = summary.get("label_studio") or {}
    if ls.get("project_url"):
        out.append(f"- the rating project in Label Studio: <{ls['project_url']}>")
    return out


def round_markdown(summary: dict[str, Any], rows: Sequence | None, report_dir: str | Path) -> str:
    """``round.md``: the title and :func:`round_body`, links relative to ``report_dir``."""
    return "\n".join([f"# Round {summary['round_id']}, sync {summary['sync_id']}", "",
                      *round_body(summary, rows, report_dir, report_dir)]).rstrip() + "\n"


def write_round_report(out_dir: str | Path, summary: dict[str, Any], aggregation=None, rows: Sequence | None = None
                       ) -> dict[str, Path]:
    """Write ``round.json``, ``round.md`` and ``round.html`` into ``out_dir``; return their paths.

    ``summary`` is what :func:`hildif.rounds.sync.sync_round` assembled (``aggregation`` in it: the
    :class:`hildif.feedback.AggregationResult`'s dict; the object itself is accepted for older callers and not
    needed); ``rows`` the fine-tuning set's rows (:func:`hildif.rounds.setfile.set_rows`), already written to
    ``fine_tuning_set.csv``.
    """
    from hildif.rounds.html_report import write_html

    out = Path(out_dir)
    paths = {"json": write_json_atomic(out / "round.json", summary)}
    paths["markdown"] = write_text_atomic(out / "round.md", round_markdown(summary, rows, out))
    paths["html"] = write_html(paths["markdown"], out / "round.html",
                               title=f"hildif round {summary['round_id']}, sync {summary['sync_id']}")
    return paths
