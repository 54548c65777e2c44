"""The promotion gate: does a sync serve the model it trained?

A sync serves its new model only when

* **MNLI holds**: accuracy on the evaluated MNLI dev sample falls by at most ``finetune.gate_max_mnli_drop`` points
  from the round's base model (None or negative: no check);
* **HANS does not fall**: HANS accuracy changes by at least ``finetune.gate_min_hans_gain`` points (0 = must not
  fall; negative = may fall that much; None: no check);
* **the served model only moves forward** (``finetune.gate_lineage``): the model served now is the round's base, or
  a model this round made from that base (an earlier sync of the same round), or nothing. A late sync of an older
  round (r1 re-synced after r2 was trained from r1's model) trains and records its version but does not take the
  served model back to a child of r1's base.

* **the stress sets hold**, only when ``finetune.gate_stress_max_drop`` is set: each of Naik et al.'s stress sets
  evaluated on both models (``eval.stress_sets``, :mod:`hildif.data.stress`) falls by at most that many points
  (negative: must gain that much). Unset (the default), their numbers are in the gate's checks and report and do not
  decide.

On a team's own task (:mod:`hildif.rounds.task`) the held-out set of the task takes MNLI's place (same allowance,
``finetune.gate_max_mnli_drop``) and there is no HANS check.

Otherwise the previous model keeps serving; the decision and its reasons go to the round report, the sync's
summary in the round state and ``hildif round status``, and an admin can serve the version anyway with
``hildif round promote``. Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

EPS = 1e-9


@dataclass
class GateDecision:
    """``serve``: whether the sync serves its model; ``reasons``: why not (empty when it does); ``checks``: the
    numbers and settings each check used."""

    serve: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _accuracy(result: Mapping[str, Any] | None, name: str) -> float | None:
    value = ((result or {}).get(name) or {}).get("accuracy")
    return None if value is None else float(value)


def task_checks(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, ft) -> tuple[list[str], dict]:
    """A team's own task (results of :func:`hildif.model.evaluation.evaluate_task`): its held-out accuracy may fall
    by at most ``finetune.gate_max_mnli_drop`` points, the allowance MNLI dev has on the paper's task."""
    max_drop = getattr(ft, "gate_max_mnli_drop", None)
    b, a = _accuracy(before, "task"), _accuracy(after, "task")
    if max_drop is None or max_drop < 0:
        return [], {"task": {"enabled": False}}
    if b is None or a is None:
        return [], {"task": {"enabled": True, "skipped": "held-out set not evaluated"}}
    drop = round(b - a, 4)
    ok = drop <= max_drop + EPS
    check = {"enabled": True, "before": b, "after": a, "drop": drop, "max_drop": max_drop, "ok": ok}
    name = ((after or {}).get("task") or {}).get("name") or "the task"
    reasons = [] if ok else [f"held-out accuracy of {name} fell {drop:.2f} points ({b:.2f} -> {a:.2f}), more than "
                             f"finetune.gate_max_mnli_drop = {max_drop:g}"]
    return reasons, {"task": check}


def metric_checks(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, ft) -> tuple[list[str], dict]:
    """The MNLI and HANS checks on two :func:`hildif.model.evaluation.evaluate` results (on a team's own task:
    :func:`task_checks`); returns (reasons, checks)."""
    if (before or {}).get("task") or (after or {}).get("task"):
        return task_checks(before, after, ft)
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    max_drop = getattr(ft, "gate_max_mnli_drop", None)
    b, a = _accuracy(before, "mnli"), _accuracy(after, "mnli")
    if max_drop is None or max_drop < 0:
        checks["mnli"] = {"enabled": False}
    elif b is None or a is None:
        checks["mnli"] = {"enabled": True, "skipped": "MNLI not evaluated"}
    else:
        drop = round(b - a, 4)
        ok = drop <= max_drop + EPS
        checks["mnli"] = {"enabled": True, "before": b, "after": a, "drop": drop, "max_drop": max_drop, "ok": ok}
        if not ok:
            reasons.append(f"MNLI fell {drop:.2f} points ({b:.2f} -> {a:.2f}), more than "
                           f"finetune.gate_max_mnli_drop = {max_drop:g}")
    min_gain = getattr(ft, "gate_min_hans_gain", None)
    b, a = _accuracy(before, "hans"), _accuracy(after, "hans")
    if min_gain is None:
        checks["hans"] = {"enabled": False}
    elif b is None or a is None:
        checks["hans"] = {"enabled": True, "skipped": "HANS not evaluated"}
    else:
        gain = round(a - b, 4)
        ok = gain >= min_gain - EPS
        checks["hans"] = {"enabled": True, "before": b, "after": a, "gain": gain, "min_gain": min_gain, "ok": ok}
        if not ok:
            reasons.append(f"HANS changed {gain:+.2f} points ({b:.2f} -> {a:.2f}), less than "
                           f"finetune.gate_min_hans_gain = {min_gain:+g}")
    stress_reasons, stress = stress_checks(before, after, ft)
    if stress is not None:
        checks["stress"] = stress
    return reasons + stress_reasons, checks


def stress_checks(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, ft
                  ) -> tuple[list[str], dict[str, Any] | None]:
    """Each stress set both results have (``result["stress"][name]["accuracy"]``): its before, after and drop, and
    whether it keeps within ``finetune.gate_stress_max_drop``. That setting None: ``enabled`` False, the numbers
    kept for the report and no reason ever given. Returns (reasons, check), check None when neither result has a
    stress set."""
    b_sets, a_sets = (before or {}).get("stress") or {}, (after or {}).get("stress") or {}
    if not b_sets and not a_sets:
        return [], None
    max_drop = getattr(ft, "gate_stress_max_drop", None)
    check: dict[str, Any] = {"enabled": max_drop is not None, "max_drop": max_drop, "sets": {}}
    reasons = []
    for name in dict.fromkeys([*b_sets, *a_sets]):
        b, a = _accuracy(b_sets, name), _accuracy(a_sets, name)
        if b is None or a is None:
            check["sets"][name] = {"before": b, "after": a, "skipped": "not evaluated on both models"}
            continue
        drop = round(b - a, 4)
        ok = True if max_drop is None else drop <= max_drop + EPS
        check["sets"][name] = {"before": b, "after": a, "drop": drop, "ok": ok}
        if not ok:
            reasons.append(f"stress set {name} fell {drop:.2f} points ({b:.2f} -> {a:.2f}), more than "
                           f"finetune.gate_stress_max_drop = {max_drop:g}")
    return reasons, check


def lineage_check(round_id: str, base_version: str, current_version: str | None,
                  versions: Mapping[str, Mapping[str, Any]], ft) -> tuple[list[str], dict]:
    """Whether serving this round's new model moves the served model forward. ``versions``: version -> its row
    (``parent``, ``round_id``) from the registry (:meth:`hildif.model.registry.ModelRegistry.versions`). Returns
    (reasons, check)."""
    if not getattr(ft, "gate_lineage", True):
        return [], {"enabled": False}
    row = versions.get(current_version or "") or {}
    same_round = row.get("round_id") == round_id and row.get("parent") == base_version
    ok = current_version is None or current_version == base_version or same_round
    check = {"enabled": True, "served": current_version, "base": base_version, "ok": ok}
    if ok:
        return [], check
    made_by = f" (made by round {row['round_id']})" if row.get("round_id") else ""
    return [f"the served model {current_version}{made_by} is neither this round's base {base_version} nor a model "
            f"of this round made from it: serving would move the served model back (finetune.gate_lineage)"], check


def decide(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, ft, *, round_id: str,
           base_version: str, current_version: str | None,
           versions: Mapping[str, Mapping[str, Any]]) -> GateDecision:
    """The gate's decision for a sync of ``round_id`` (see the module docstring). ``ft``: ``cfg.finetune``."""
    reasons, checks = metric_checks(before, after, ft)
    lineage_reasons, checks["lineage"] = lineage_check(round_id, base_version, current_version, versions, ft)
    reasons += lineage_reasons
    return GateDecision(not reasons, reasons, checks)


__all__ = ["GateDecision", "decide", "lineage_check", "metric_checks", "stress_checks", "task_checks"]
