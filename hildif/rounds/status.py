"""Where a round stands: progress per pair and per annotator, agreement so far, syncs and their models.

Live (ratings pulled from Label Studio, read-only: nothing is snapshotted) or offline (the last snapshot).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hildif.config import HildifConfig
from hildif.feedback.ratings import DECLINED_STATUSES
from hildif.rounds.state import RoundState


def round_status(cfg: HildifConfig, round_id: str, *, client=None, live: bool = True) -> dict[str, Any]:
    """A JSON-able dict: ``pairs`` (per pair: submitted, skipped, target, done; the target is the
    ``annotators_per_task`` the round was started with), ``annotators`` (per annotator:
    submitted, skipped), ``progress`` totals, ``agreement`` (Krippendorff's ordinal alpha), ``syncs``,
    ``current_version``, ``source`` (``labelstudio`` or ``snapshot <id>``)."""
    from hildif.feedback import aggregate
    from hildif.model.registry import ModelRegistry

    state = RoundState(cfg.run_path("rounds.sqlite"))
    info = state.round(round_id)
    pairs = state.pairs(round_id)
    target = int(info.get("annotators_per_task") or cfg.labelstudio.annotators_per_task)  # the round's own
    if live:
        if client is None:
            from hildif.labelstudio.client import LabelStudioClient

            client = LabelStudioClient.from_config(cfg.labelstudio)
        by_task = {p.task_id: p.pair for p in pairs if p.task_id is not None}
        ratings = client.ratings(int(info["project_id"]), by_task) if by_task and info["project_id"] else []
        source = "labelstudio"
    else:
        snap = state.latest_snapshot(round_id)
        ratings = state.snapshot_ratings(snap.snapshot_id) if snap else []
        source = f"snapshot {snap.snapshot_id}" if snap else "no snapshot yet"
    agg = aggregate(ratings, method=cfg.feedback.aggregation, min_raters=cfg.feedback.min_raters,
                    review_spread=cfg.feedback.review_spread) if ratings else None
    counted = {key: len(p.ratings) for key, p in (agg.pairs.items() if agg else [])}
    skipped = Counter(r.pair for r in ratings if r.status in DECLINED_STATUSES)
    pair_rows = []
    for p in pairs:
        key = p.pair
        pair_rows.append({
            "anchor_id": p.anchor_id, "example_id": p.example_id, "rank": p.rank, "task_id": p.task_id,
            "submitted": counted.get(key, 0), "skipped": skipped.get(key, 0), "target": target,
            "done": counted.get(key, 0) >= target,
            "score": agg.pairs[key].score if agg and key in agg.pairs else None,
            "spread": agg.pairs[key].spread if agg and key in agg.pairs else None,
        })
    annotators: dict[str, dict[str, int]] = {}
    if agg:
        for p in agg.pairs.values():
            for r in p.ratings:
                annotators.setdefault(r.annotator, {"submitted": 0, "skipped": 0})["submitted"] += 1
    for r in ratings:
        if r.status in DECLINED_STATUSES:
            annotators.setdefault(r.annotator, {"submitted": 0, "skipped": 0})["skipped"] += 1
    syncs = [{k: s[k] for k in ("sync_id", "status", "version", "started_at", "finished_at", "report_dir", "error")}
             | {k: (s.get("summary") or {}).get(k) for k in ("metrics", "served", "gate", "promoted")}
             for s in state.syncs(round_id)]
    return {
        "round_id": round_id, "project_id": info["project_id"], "project_title": info.get("project_title"),
        "annotators_per_task": target, "base_version": info["base_version"],
        "source": source,
        "progress": {
            "pairs": len(pairs), "pushed": sum(p.task_id is not None for p in pairs),
            "pairs_done": sum(r["done"] for r in pair_rows), "ratings": sum(counted.values()),
            "ratings_needed": target * len(pairs),
        },
        "pairs": pair_rows,
        "annotators": dict(sorted(annotators.items())),
        "agreement": agg.agreement.to_dict() if agg else None,
        "syncs": syncs,
        "current_version": ModelRegistry(cfg.run.run_dir).current(),
    }


def format_status(status: dict[str, Any]) -> str:
    """A plain-text summary of :func:`round_status` for the terminal."""
    pr = status["progress"]
    alpha = ((status.get("agreement") or {}).get("overall") or {}).get("alpha")
    lines = [
        f"round {status['round_id']}  (Label Studio project {status['project_id']}, ratings from {status['source']})",
        f"  pairs pushed {pr['pushed']}/{pr['pairs']}, done {pr['pairs_done']}/{pr['pairs']}, "
        f"ratings {pr['ratings']}/{pr['ratings_needed']}",
        f"  agreement (Krippendorff ordinal alpha): {'n/a' if alpha is None else f'{alpha:.3f}'}",
        f"  serving model {status['current_version']} (round base {status['base_version']})",
        "",
        "  annotator                         submitted  skipped",
    ]
    for name, c in status["annotators"].items():
        lines.append(f"  {name:<32} {c['submitted']:>9}  {c['skipped']:>7}")
    lines += ["", "  anchor        example       rank  task  rated/target  skipped  score"]
    for p in status["pairs"]:
        score = "-" if p["score"] is None else f"{p['score']:.2f}"
        lines.append(f"  {p['anchor_id']:<13} {p['example_id'][:13]:<13} {p['rank']:>4}  {p['task_id'] or '-':>4}  "
                     f"{p['submitted']:>5}/{p['target']:<6}  {p['skipped']:>7}  {score}")
    if status["syncs"]:
        lines += ["", "  syncs:"]
        for s in status["syncs"]:
            lines.append(f"  #{s['sync_id']} {s['status']:<8} version {s['version'] or '-'}  {s['finished_at'] or ''}"
                         + (f"  error: {s['error'].splitlines()[0]}" if s.get("error") else ""))
            lines += _gate_lines(s, status["round_id"])
    return "\n".join(lines)


def _gate_lines(sync: dict[str, Any], round_id: str) -> list[str]:
    """The promotion gate's word on a sync: not served and why (and how to promote), or promoted by an admin."""
    if sync.get("promoted"):
        return [f"      promoted by an admin at {sync['promoted'].get('at')}"]
    if sync.get("served") is False:
        reasons = (sync.get("gate") or {}).get("reasons") or []
        return [f"      not served (promotion gate): {r}" for r in reasons] + [
            f"      serve it anyway: hildif round promote --round {round_id} --version {sync['version']}"]
    return []
