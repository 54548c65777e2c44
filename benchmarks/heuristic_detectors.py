"""Firing rates of hildif.data.heuristics's detectors on HANS rows whose heuristic is known.

Usage: python benchmarks/heuristic_detectors.py [--hans PATH] [--out DIR]
Reads hans/heuristics_evaluation_set.jsonl.gz (HILDIF_DATA_DIR, default ../shared/data), prints a Markdown table
(percent of rows on which each detector fires, per HANS heuristic and gold label) and writes it as JSON + Markdown.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from collections import defaultdict
from pathlib import Path

from hildif.data.heuristics import heuristic_features
from hildif.utils.atomic import write_json_atomic, write_text_atomic

DETECTORS = ("lexical_overlap", "subsequence", "constituent", "negation", "reversed_order", "passive")


def default_hans() -> Path:
    root = Path(os.environ.get("HILDIF_DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    return root / "hans" / "heuristics_evaluation_set.jsonl.gz"


def measure(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    hits: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows: dict[tuple[str, str], int] = defaultdict(int)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            key = (r["heuristic"], r["gold_label"])
            feats = heuristic_features(r["sentence1"], r["sentence2"])
            rows[key] += 1
            for d in DETECTORS:
                hits[key][d] += bool(feats[d])
    return {
        f"{h}/{label}": {"rows": rows[(h, label)], **{d: 100.0 * hits[(h, label)][d] / rows[(h, label)] for d in DETECTORS}}
        for h, label in sorted(rows)
    }


def to_markdown(table: dict[str, dict[str, float]]) -> str:
    lines = ["| HANS heuristic / label | rows | " + " | ".join(DETECTORS) + " |", "|---|---:|" + "---:|" * len(DETECTORS)]
    for key, row in table.items():
        lines.append(f"| {key} | {row['rows']} | " + " | ".join(f"{row[d]:.1f}" for d in DETECTORS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hans", type=Path, default=default_hans())
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()
    table = measure(args.hans)
    md = "# Heuristic detectors on HANS (percent of rows that fire)\n\n" + to_markdown(table)
    print(md)
    write_json_atomic(args.out / "heuristic_detectors.json", table)
    write_text_atomic(args.out / "heuristic_detectors.md", md)


if __name__ == "__main__":
    main()
