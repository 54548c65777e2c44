"""Collect finished ablation runs (``hildif experiment ablation --out DIR``) into one results file per profile.

Each run folder is one *recipe* (the settings every cell of it shares: influence ranking, anchors file, rehearsal,
...). The script reads the folders' ``manifest.json``, ``baseline.json`` and ``cells/*.json`` (nothing is
recomputed) and writes

* ``<out>.json``: per recipe, the settings that differ between recipes, the baseline and every cell's after-metrics
  (MNLI, HANS overall, per heuristic x class, per subcase) with its fine-tuning set and seconds;
* ``<out>_tables.md``: the summary (recipe x configuration x p: seeds, MNLI and HANS mean ± std, HANS per heuristic
  (entailment, non-entailment), mean non-entailment, differences to the baseline) and the per-cell table;
* ``<out>_figure_1a.png`` and ``<out>_figure_1b_p<p>.png``: the paper's figures for one recipe (``--figures``, the
  first by default) over every seed and p of its folders,

so the hand-written ``ablation_default.md`` quotes tables that a rerun of this script reproduces.

    python benchmarks/ablation_collect.py --out benchmarks/results/ablation_default \\
        --recipe default=runs/default/experiments/ablation_default \\
        --recipe store-ranking=runs/default/experiments/ablation_store
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hildif.model.evaluation import HEURISTICS, SHORT  # noqa: E402
from hildif.config import load_config  # noqa: E402
from hildif.experiments.ablation import (  # noqa: E402
    CONFIGURATIONS, AblationSettings, flatten_settings, is_current, manifest_digest,
)
from hildif.experiments.ablation_report import summarize, write_figures  # noqa: E402

CLASSES = ("entailment", "non-entailment")
# settings compared between recipes (manifest sections); the rest is the same for every recipe of one profile
COMPARED = ("influence", "feedback", "finetune", "data", "settings")


def _after(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    hans = evaluation.get("hans") or {}
    return {
        "mnli": (evaluation.get("mnli") or {}).get("accuracy"),
        "hans": hans.get("accuracy"),
        "hans_by_heuristic": {h: {c: (hans.get("by_heuristic") or {}).get(h, {}).get(c) for c in CLASSES}
                              for h in HEURISTICS},
        "hans_by_subcase": {k: v.get("accuracy") for k, v in (hans.get("by_subcase") or {}).items()},
    }


def _relative(obj: Any) -> Any:
    """``obj`` with every absolute path (a string starting with ``/``) cut to its file name: a results file names no
    folder of the machine it was measured on."""
    if isinstance(obj, dict):
        return {k: _relative(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative(v) for v in obj]
    return os.path.basename(obj) if isinstance(obj, str) and obj.startswith("/") else obj


def _sort(cells: list[dict[str, Any]]) -> None:
    order = {c.key: i for i, c in enumerate(CONFIGURATIONS)}
    cells.sort(key=lambda c: (order.get(c["key"], 99), c["p"], c["seed"]))


def read_recipe(folder: Path) -> dict[str, Any]:
    """One run folder as ``{"settings", "baseline", "cells"}``; cells recorded with other settings are skipped."""
    manifest = json.loads((folder / "manifest.json").read_text())
    base = json.loads((folder / "baseline.json").read_text())
    cells, records, digest = [], [], manifest_digest(manifest)
    for path in sorted(glob.glob(str(folder / "cells" / "*.json"))):
        cell = json.loads(Path(path).read_text())
        if not is_current(cell, digest):
            print(f"{path}: recorded with other settings than the folder's manifest; left out", file=sys.stderr)
            continue
        fts = cell["fine_tuning_set"]
        records.append(cell)
        cells.append({
            "configuration": cell["configuration"]["label"], "key": cell["configuration"]["key"],
            "p": cell["top_p"], "seed": cell["seed"], "anchors": cell["anchors"],
            "fine_tuning_set": {"size": fts["size"], "parts": (fts.get("stats") or {}).get("parts")},
            "seconds": cell["seconds"], "after": _after(cell["evaluation"]),
        })
    _sort(cells)
    # a setting added after the run was recorded had the behaviour of its default then (new settings default to the
    # old behaviour): filled in from today's defaults, so that it is compared with the recipes that set it
    defaults = dataclasses.asdict(load_config(profile="default"))
    manifest = _relative(manifest)
    settings = {k: ({**defaults[k], **manifest[k]} if k in defaults and manifest.get(k) is not None else manifest.get(k))
                for k in COMPARED}
    return {"settings": settings, "baseline": {"version": base.get("version"), **_after(base["evaluation"])},
            "cells": cells, "records": records, "baseline_record": base}


def write_recipe_figures(recipe: Mapping[str, Any], out: Path) -> list[Path]:
    """The runner's Figure 1a / 1b for one recipe over all its folders' cells (every seed and p found)."""
    cells = recipe["records"]
    keys = {c["configuration"]["key"] for c in cells}
    settings = AblationSettings(configurations=[c for c in CONFIGURATIONS if c.key in keys],
                                top_ps=sorted({c["top_p"] for c in cells}), seeds=sorted({c["seed"] for c in cells}))
    summary = summarize(cells, recipe["baseline_record"], settings)
    return list(write_figures(summary, out.parent, prefix=f"{out.name}_").values())


def _differences(recipes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per recipe, the ``section.key`` settings whose value is not the same in every recipe that records it."""
    flat = {name: flatten_settings({s: sec for s, sec in r["settings"].items() if sec}) for name, r in recipes.items()}
    keys = sorted({k for f in flat.values() for k in f})
    varying = [k for k in keys if len({json.dumps(f[k], sort_keys=True) for f in flat.values() if k in f}) > 1]
    return {name: {k: f[k] for k in varying if k in f} for name, f in flat.items()}


def _ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    return f"{mean:.2f}" if len(values) < 2 else f"{mean:.2f} ± {statistics.stdev(values):.2f}"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def summary_table(recipes: Mapping[str, Mapping[str, Any]]) -> str:
    head = ("recipe", "configuration", "p", "seeds", "MNLI", "HANS", *(f"{SHORT[h]} (ent, non-ent)" for h in HEURISTICS),
            "mean non-ent", "Δ MNLI", "Δ HANS")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    baseline = None
    for name, recipe in recipes.items():
        base = recipe["baseline"]
        if baseline is None or baseline["version"] != base["version"]:
            baseline = base
            hb = base["hans_by_heuristic"]
            lines.append(f"| - | baseline {base['version']} | - | - | {base['mnli']:.2f} | {base['hans']:.2f} | "
                         + " | ".join(f"({hb[h]['entailment']:.1f}, {hb[h]['non-entailment']:.1f})" for h in HEURISTICS)
                         + f" | {_mean([hb[h]['non-entailment'] for h in HEURISTICS]):.1f} | - | - |")
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for cell in recipe["cells"]:
            groups.setdefault((cell["configuration"], cell["p"]), []).append(cell)
        for (label, p), cells in groups.items():
            after = [c["after"] for c in cells]
            by = lambda h, c: _mean([a["hans_by_heuristic"][h][c] for a in after])  # noqa: E731
            mnli, hans = [a["mnli"] for a in after], [a["hans"] for a in after]
            lines.append(
                f"| {name} | {label} | {p} | {','.join(str(c['seed']) for c in cells)} | {_ms(mnli)} | {_ms(hans)} | "
                + " | ".join(f"({by(h, 'entailment'):.1f}, {by(h, 'non-entailment'):.1f})" for h in HEURISTICS)
                + f" | {_mean([by(h, 'non-entailment') for h in HEURISTICS]):.1f}"
                f" | {_mean(mnli) - base['mnli']:+.2f} | {_mean(hans) - base['hans']:+.2f} |")
    return "\n".join(lines) + "\n"


def cell_table(recipes: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["| recipe | cell | MNLI | HANS | fine-tuning set | seconds |", "|---|---|---|---|---|---|"]
    for name, recipe in recipes.items():
        for c in recipe["cells"]:
            fts = c["fine_tuning_set"]
            lines.append(f"| {name} | {c['key']} p{c['p']} s{c['seed']} | {c['after']['mnli']:.2f} | "
                         f"{c['after']['hans']:.2f} | {fts['size']} {fts['parts']} | {c['seconds']['total']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", action="append", required=True, metavar="NAME=DIR",
                    help="a recipe's name and its ablation output folder (repeatable, in table order; a name given "
                         "twice merges the folders' cells)")
    ap.add_argument("--out", required=True, help="output path without extension")
    ap.add_argument("--figures", metavar="NAME", help="the recipe whose figures are drawn (default: the first)")
    ap.add_argument("--what", default="hildif experiment ablation on the default profile (MiniLM-L6, 32,137 MNLI "
                    "pairs), full HANS (30,000) and MNLI dev_matched (9,815), 10 x score copies, 2 epochs")
    args = ap.parse_args(argv)
    recipes: dict[str, dict[str, Any]] = {}
    for item in args.recipe:
        name, sep, folder = item.partition("=")
        if not sep or not name or not Path(folder, "manifest.json").is_file():
            ap.error(f"--recipe {item!r}: expected NAME=DIR with DIR an ablation output folder (manifest.json)")
        recipe = read_recipe(Path(folder))
        if name in recipes:  # one recipe over several folders (e.g. p = 20 run apart): same baseline, cells merged
            first = recipes[name]
            same = all(first["settings"][k] == recipe["settings"][k] for k in COMPARED if k != "settings")
            if first["baseline"]["version"] != recipe["baseline"]["version"] or not same:
                ap.error(f"--recipe {item!r}: its baseline or settings are not those of the recipe's other folders")
            cell_ids = {(c["key"], c["p"], c["seed"]) for c in first["cells"]}
            if any((c["key"], c["p"], c["seed"]) in cell_ids for c in recipe["cells"]):
                ap.error(f"--recipe {item!r}: a cell of this folder is also in the recipe's other folders")
            recipes[name]["cells"] += recipe["cells"]
            recipes[name]["records"] += recipe["records"]
            _sort(recipes[name]["cells"])
        else:
            recipes[name] = recipe
    figure_recipe = args.figures or next(iter(recipes))
    if figure_recipe not in recipes:
        ap.error(f"--figures {figure_recipe!r}: no such recipe (given: {', '.join(recipes)})")
    out = Path(args.out)
    figures = write_recipe_figures(recipes[figure_recipe], out) if recipes[figure_recipe]["records"] else []
    for recipe in recipes.values():
        del recipe["records"], recipe["baseline_record"]
    differences = _differences(recipes)
    for name, recipe in recipes.items():
        recipe["differs"] = differences[name]
    out.with_suffix(".json").write_text(json.dumps({"what": args.what, "recipes": recipes}, indent=1) + "\n")
    tables = (f"<!-- written by benchmarks/ablation_collect.py -->\n\n## Summary (mean ± std over seeds)\n\n"
              f"{summary_table(recipes)}\n## Settings that differ between recipes\n\n"
              + "".join(f"- {name}: {json.dumps(d)}\n" for name, d in differences.items())
              + f"\n## Cells\n\n{cell_table(recipes)}")
    Path(f"{out}_tables.md").write_text(tables)
    print(tables)
    print("figures of recipe %r: %s" % (figure_recipe, ", ".join(p.name for p in figures) or "none (no cells)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
