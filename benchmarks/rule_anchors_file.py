"""An anchors file for the ablation from a rule, in both classes (issue 11's "rule anchors in both classes").

The ablation's handpicked configurations (H) read ``data.anchors_file`` (the paper's five by default). This script
writes another such file: for each class, ``--per-class`` MNLI dev examples matching ``RULE+label:<class>`` (the
grammar of :class:`hildif.influence.anchors.RuleAnchors`; default: lexical overlap detected in the text and the
run's current model wrong), drawn with ``--seed``. A class with fewer matches gives all it has.

    HILDIF_DATA_DIR=../shared/data python benchmarks/rule_anchors_file.py --run-dir runs/default \\
        --per-class 5 --out runs/default/anchors_both.jsonl
    hildif experiment ablation --run-dir runs/default --configs hs-da-h --anchors 9 \\
        --set data.anchors_file=$PWD/runs/default/anchors_both.jsonl --out runs/default/experiments/ablation_rule_both
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hildif.config import load_config  # noqa: E402
from hildif.data.example import LABEL_NAMES  # noqa: E402
from hildif.experiments.ablation import resolve_baseline  # noqa: E402
from hildif.influence.anchors import RuleAnchors, select_anchors  # noqa: E402
from hildif.model.loading import load_checkpoint  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/default")
    ap.add_argument("--rule", default="heuristic:lexical_overlap+misclassified")
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="the JSON Lines file to write (pairID, sentence1, sentence2, ...)")
    args = ap.parse_args()
    cfg = load_config(overrides=[f"run.run_dir={args.run_dir}"])
    classifier = load_checkpoint(cfg, resolve_baseline(cfg, None))
    rows = []
    for label in LABEL_NAMES:
        matching = select_anchors(RuleAnchors(f"{args.rule}+label:{label}"), data=cfg.data, classifier=classifier)
        picked = random.Random(args.seed).sample(matching, min(args.per_class, len(matching)))
        print(f"{label}: {len(matching)} dev examples match, {len(picked)} taken")
        rows += [{"pairID": e.id, "sentence1": e.premise, "sentence2": e.hypothesis,
                  "gold_label": e.metadata.get("gold_label", label), "binary_label": label,
                  "heuristics": list(e.metadata.get("heuristics") or [])} for e in picked]
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        print(f"  {r['pairID']:>8} {r['binary_label']:>14}  {r['sentence1'][:60]!r} / {r['sentence2'][:50]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
