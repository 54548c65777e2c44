"""Waiting for people to rate a round, on one quiet terminal line.

:func:`wait_for_ratings` polls the round's progress (read-only) and shows it on one line (rewritten in place on a
terminal; printed only when it changes otherwise): ratings so far, tasks with all their raters, each person's count.
It returns when the first of these happens:

* ``complete``: every task has the round's raters;
* ``timeout``: the time limit passed;
* ``admin``: the admin said so (Enter on the terminal: :class:`EnterToProceed`);
* ``synced``: a sync of the round finished meanwhile (``hildif round sync`` from another terminal).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from hildif.config import HildifConfig

REASONS = ("complete", "timeout", "admin", "synced")


@dataclass
class WaitOutcome:
    reason: str  # one of REASONS
    status: dict[str, Any]  # the last hildif.rounds.status.round_status
    waited_s: float

    def describe(self) -> str:
        pr = self.status["progress"]
        return {
            "complete": f"every task has its {self.status['annotators_per_task']} ratings",
            "timeout": f"the time limit passed ({self.waited_s:.0f} s) with {pr['ratings']}/{pr['ratings_needed']} "
                       "ratings",
            "admin": f"you asked to go on with {pr['ratings']}/{pr['ratings_needed']} ratings",
            "synced": "a sync of the round finished in another terminal",
        }[self.reason]


def progress_line(status: dict[str, Any], remaining_s: float | None, enter: bool) -> str:
    """``ratings 3/8 | tasks done 1/4 | ana@x.org 2/4, ben@x.org 1/4 | 29:40 left, Enter: go on``."""
    pr = status["progress"]
    people = ", ".join(f"{name} {c['submitted']}/{pr['pairs']}" for name, c in status["annotators"].items())
    parts = [f"ratings {pr['ratings']}/{pr['ratings_needed']}", f"tasks done {pr['pairs_done']}/{pr['pairs']}",
             people or "nobody has rated yet"]
    tail = []
    if remaining_s is not None:
        tail.append(f"{int(remaining_s) // 60}:{int(remaining_s) % 60:02d} left")
    if enter:
        tail.append("Enter: go on")
    return " | ".join(parts + ([", ".join(tail)] if tail else []))


class EnterToProceed:
    """While open, a line typed on ``stream`` (the terminal) sets :attr:`event`. Only on an interactive terminal
    (:attr:`active`); a daemon thread, so an unanswered read never holds up the exit."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        self.event = threading.Event()
        self.active = bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> "EnterToProceed":
        if self.active:
            threading.Thread(target=self._read, name="hildif-enter", daemon=True).start()
        return self

    def _read(self) -> None:
        try:
            if self.stream.readline():
                self.event.set()
        except (OSError, ValueError):
            pass

    def __exit__(self, *exc) -> None:
        return None


def wait_for_ratings(
    cfg: HildifConfig, round_id: str, client, *, timeout_s: float | None, poll_s: float = 10.0,
    proceed: threading.Event | None = None, out: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> WaitOutcome:
    """Wait as the module docstring says; ``proceed``: set by the admin (Enter) to go on now."""
    from hildif.rounds.state import RoundState
    from hildif.rounds.status import round_status

    out = out or sys.stdout
    live = bool(getattr(out, "isatty", lambda: False)())
    state = RoundState(cfg.run_path("rounds.sqlite"))
    syncs_before = {s["sync_id"] for s in state.syncs(round_id) if s["status"] == "done"}
    start = clock()
    last = None
    enter = proceed is not None and live  # say "Enter: go on" only where Enter can be typed
    proceed = proceed or threading.Event()
    try:
        while True:
            status = round_status(cfg, round_id, client=client)
            waited = clock() - start
            remaining = None if timeout_s is None else max(0.0, timeout_s - waited)
            line = progress_line(status, remaining, enter=enter)
            if live:
                out.write("\r\033[K" + line)
                out.flush()
            elif line.split(" | ")[:3] != (last or "").split(" | ")[:3]:  # not for the clock alone
                print(line, file=out, flush=True)
            last = line
            pr = status["progress"]
            reason = None
            if pr["pairs_done"] >= pr["pairs"]:
                reason = "complete"
            elif proceed.is_set():
                reason = "admin"
            elif {s["sync_id"] for s in state.syncs(round_id) if s["status"] == "done"} - syncs_before:
                reason = "synced"
            elif remaining is not None and remaining <= 0:
                reason = "timeout"
            if reason:
                return WaitOutcome(reason, status, waited)
            wait = poll_s if remaining is None else min(poll_s, remaining)
            proceed.wait(max(0.05, wait))
    finally:
        if live:
            out.write("\n")
            out.flush()


__all__ = ["EnterToProceed", "REASONS", "WaitOutcome", "progress_line", "wait_for_ratings"]
