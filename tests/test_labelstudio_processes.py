"""Process supervision for a round on one machine (hildif/labelstudio/processes.py) with real child processes,
and the demo's own configuration copy (hildif/demo.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hildif.labelstudio.processes import Supervisor
from hildif.labelstudio.server import stop_process_group


class Sleeper:
    """A real child process in its own process group, stopped like the backend and Label Studio are."""

    def __init__(self, stopped: list[str], name: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
        self.stopped, self.name = stopped, name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.stopped.append(self.name)
        stop_process_group(self.proc, timeout=10)


def test_an_error_stops_everything_last_first_and_says_so():
    stopped, told = [], []
    with pytest.raises(ZeroDivisionError):
        with Supervisor(on_stop=lambda name, pid: told.append((name, pid))) as sup:
            a, b = sup.add(Sleeper(stopped, "a")), sup.add(Sleeper(stopped, "b"))
            1 / 0
    assert stopped == ["b", "a"]
    assert told == [("Sleeper", b.pid), ("Sleeper", a.pid)]
    assert a.proc.poll() is not None and b.proc.poll() is not None and not sup.started


def test_sigterm_becomes_keyboard_interrupt_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    stopped: list[str] = []
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        with Supervisor() as sup:
            child = sup.add(Sleeper(stopped, "child"))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler raises at once; the sleep is not finished
    assert stopped == ["child"] and child.proc.poll() is not None
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_failing_stop_does_not_keep_the_others_running():
    stopped: list[str] = []

    class Broken:
        pid = None

        def stop(self) -> None:
            raise RuntimeError("cannot stop")

    with Supervisor() as sup:
        first = sup.add(Sleeper(stopped, "first"))
        sup.add(Broken())
    assert stopped == ["first"] and first.proc.poll() is not None


def test_the_demo_works_on_a_copy_of_the_configuration(tmp_path):
    from hildif.config import load_config
    from hildif.demo import DemoError, DemoOptions, demo_config

    cfg = load_config(overrides=[f"run.run_dir={tmp_path}"])
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text("{}\n")
    original = cfg.to_dict()
    copy = demo_config(cfg, DemoOptions(top_p=3, anchors_file=str(anchors)))
    assert copy.influence.top_p == 3 and copy.data.anchors_file == str(anchors.resolve())
    copy.labelstudio.url = "http://127.0.0.1:1"
    assert cfg.to_dict() == original  # the caller's configuration is untouched
    with pytest.raises(DemoError, match="--anchors-file .*nope.jsonl does not exist"):
        demo_config(cfg, DemoOptions(anchors_file=str(tmp_path / "nope.jsonl")))
