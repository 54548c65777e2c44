"""Naik et al.'s stress tests (``hildif.data.stress``) on the baseline and a round's model, from a finished ablation run.

The ablation (``hildif experiment ablation --keep-models --out DIR``) evaluates its baseline and every cell on HANS,
MNLI dev and the stress sets of ``eval.stress_sets`` (full sets unless ``eval.mnli_sample`` says otherwise); this
script reads ``DIR/baseline.json`` and ``DIR/cells/*.json`` (nothing is recomputed) and writes ``<out>.json`` and
``<out>_tables.md`` (quoted by the hand-written ``<out>.md``): per stress set, the 2-class accuracy overall and per gold class of the baseline and of each cell's
model (named by its version), the change, and the unperturbed MNLI rows beside them.

    python benchmarks/stress_tests.py --run runs/default/experiments/stress_round \\
        --out benchmarks/results/stress_tests
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.results_file import run_line, write_results  # noqa: E402
from hildif.model.evaluation import STRESS_NAMES  # noqa: E402

CLASSES = ("entailment", "non-entailment")


def stress_rows(evaluation: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{set: {"n", "all", "entailment", "non-entailment"}}`` of one evaluation, the unperturbed MNLI rows first
    (``mnli_dev``)."""
    rows = {}
    for name, cell in [("mnli_dev", evaluation.get("stress_reference")), *(evaluation.get("stress") or {}).items()]:
        if cell:
            rows[name] = {"n": cell["n"], "all": cell["accuracy"],
                          **{c: (cell.get("by_class") or {}).get(c) for c in CLASSES}}
    return rows


def _num(v: float | None, sign: bool = False) -> str:
    return "-" if v is None else f"{v:{'+' if sign else ''}.2f}"


def markdown(results: Mapping[str, Any]) -> list[str]:
    base = results["baseline"]
    lines = ["| set | n | model | all | entailment | non-entailment | Δ all | Δ entailment | Δ non-entailment |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, b in base["stress"].items():
        label = "MNLI dev (unperturbed)" if name == "mnli_dev" else STRESS_NAMES.get(name, name)
        lines.append(f"| {label} | {b['n']} | baseline {base['version']} | {_num(b['all'])} | "
                     f"{_num(b['entailment'])} | {_num(b['non-entailment'])} | | | |")
        for cell in results["rounds"]:
            a = cell["stress"].get(name)
            if not a:
                continue
            d = {k: None if a[k] is None or b[k] is None else a[k] - b[k] for k in ("all", *CLASSES)}
            lines.append(f"| {label} | {a['n']} | round {cell['version']} ({cell['label']}) | {_num(a['all'])} | "
                         f"{_num(a['entailment'])} | {_num(a['non-entailment'])} | {_num(d['all'], True)} | "
                         f"{_num(d['entailment'], True)} | {_num(d['non-entailment'], True)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a finished `hildif experiment ablation --out` folder")
    ap.add_argument("--out", required=True, help="results file stem (writes <out>.json and <out>_tables.md)")
    args = ap.parse_args(argv)
    run = Path(args.run)
    base_file = run / "baseline.json"
    if not base_file.is_file():
        ap.error(f"{base_file} not found: run `hildif experiment ablation --out {run}` first")
    base = json.loads(base_file.read_text())
    if not (base["evaluation"].get("stress")):
        ap.error(f"{base_file} has no stress sets: it was evaluated with eval.stress_sets empty or by an older hildif")
    cells = [json.loads(p.read_text()) for p in sorted((run / "cells").glob("*.json"))]
    manifest = json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").is_file() else {}
    results = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "baseline": {"version": base["version"], "stress": stress_rows(base["evaluation"]),
                     "mnli": base["evaluation"]["mnli"]["accuracy"], "hans": base["evaluation"]["hans"]["accuracy"]},
        "rounds": [{"cell": c["key"], "label": f"{c['configuration']['label']}, p = {c['top_p']}, seed {c['seed']}",
                    "version": c.get("model_version") or "(not kept)", "stress": stress_rows(c["evaluation"]),
                    "mnli": c["evaluation"]["mnli"]["accuracy"], "hans": c["evaluation"]["hans"]["accuracy"],
                    "fine_tuning_set": c["fine_tuning_set"]["size"], "seconds": c["seconds"]}
                   for c in cells if c["evaluation"].get("stress")],
        "settings": {k: manifest.get(k) for k in ("settings", "eval", "finetune", "feedback") if k in manifest},
    }
    Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"Baseline {base['version']}: MNLI {_num(results['baseline']['mnli'])}, HANS "
             f"{_num(results['baseline']['hans'])}."]
    lines += [f"Round {c['version']} ({c['label']}): MNLI {_num(c['mnli'])}, HANS {_num(c['hans'])}; fine-tuned on "
              f"{c['fine_tuning_set']} examples." for c in results["rounds"]]
    lines += ["", "2-class accuracy %, 2 decimals; Δ = round - baseline, points.", "", *markdown(results), "",
              run_line("stress_tests.py")]
    write_results(lines, f"{args.out}_tables.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
