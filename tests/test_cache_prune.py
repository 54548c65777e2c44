"""``hildif cache list/prune``: what the served model, the newest versions and open rounds need stays; the rest goes."""

import json
import os
import time

import pytest

from hildif import caches
from hildif.cli import main
from hildif.config import ConfigError, load_config
from hildif.rounds.state import RoundState
from hildif.utils.artifacts import ArtifactDir


def _version(run, name, age_s):
    folder = run / "models" / name
    folder.mkdir(parents=True)
    (folder / "hildif.json").write_text(json.dumps({"version": name}))
    t = time.time() - age_s
    os.utime(folder / "hildif.json", (t, t))  # the registry orders versions by when they were saved


def _artifact(cache, kind, tag, versions, size=1000):
    with cache.write(kind, {"tag": tag}, version=versions[0]) as tmp:
        (tmp / "data.bin").write_bytes(b"x" * size)
    for v in versions[1:]:
        cache.find(kind, {"tag": tag}, version=v)
    return cache.path(kind, {"tag": tag})


@pytest.fixture()
def run(tmp_path):
    """A run with versions v0 (oldest) .. v4, v1 served, round r-open (base v0) not finished, round r-done (base v2)
    finished; one cache per version, a prefix artifact shared by v0 and v3, a legacy file and an old partial write."""
    run = tmp_path / "run"
    for i in range(5):
        _version(run, f"v{i}", 1000 - 100 * i)
    (run / "models" / "current.json").write_text(json.dumps({"version": "v1", "path": str(run / "models" / "v1")}))
    state = RoundState(run / "rounds.sqlite")
    state.create_round("r-open", "v0", "models/v0", {}, {}, [], [])
    state.create_round("r-done", "v2", "models/v2", {}, {}, [], [])
    snap = state.add_snapshot("r-done", [])
    sync = state.begin_sync("r-done", snap.snapshot_id)
    state.finish_sync(sync, scores=[], augmented=[], version="v3", metrics={}, report_dir="r", summary={})
    influence, store = ArtifactDir(run / "cache" / "influence"), ArtifactDir(run / "cache" / "store")
    paths = {f"knn-v{i}": _artifact(influence, "knn", i, [f"v{i}"]) for i in range(5)}
    paths["store-v2"] = _artifact(store, "store", 2, ["v2"], size=5000)
    paths["prefix-v0-v3"] = _artifact(influence, "prefix", "shared", ["v3", "v0"])
    paths["prefix-old"] = _artifact(influence, "prefix", "old", ["untrained"])
    legacy = run / "cache" / "store" / "store-0123456789abcdef0123.npy"
    legacy.write_bytes(b"z" * 300)
    partial = run / "cache" / "influence" / ".knn-feedfeedfeedfeedfeed.ab12cd.tmp"
    partial.mkdir()
    (partial / "index.faiss").write_bytes(b"p" * 200)
    old = time.time() - 7 * 3600
    os.utime(partial / "index.faiss", (old, old))
    os.utime(partial, (old, old))
    cfg = load_config(overrides=[f"run.run_dir={run}"])
    return {"run": run, "cfg": cfg, "paths": paths, "legacy": legacy, "partial": partial}


def test_open_rounds_are_those_without_a_done_sync_or_with_one_running(tmp_path):
    state = RoundState(tmp_path / "rounds.sqlite")
    state.create_round("a", "v0", "m", {}, {}, [], [])
    state.create_round("b", "v1", "m", {}, {}, [], [])
    snap = state.add_snapshot("b", [])
    state.finish_sync(state.begin_sync("b", snap.snapshot_id), scores=[], augmented=[], version="v2", metrics={},
                      report_dir="r", summary={})
    assert state.open_rounds() == {"a": "v0"}
    state.begin_sync("b", snap.snapshot_id)  # a later sync of b is running: b needs its base again
    assert state.open_rounds() == {"a": "v0", "b": "v1"}


def test_prune_keeps_the_served_the_newest_and_open_rounds_bases(run):
    protected = caches.protected_versions(run["cfg"])  # cache_keep_versions = 2 by default
    assert protected == {"v1": "served", "v4": "one of the newest 2", "v3": "one of the newest 2",
                         "v0": "base of open round r-open"}
    decisions = caches.plan(run["cfg"])
    by_name = {d.entry.name: d for d in decisions}
    paths = run["paths"]
    keep = {p.name for n, p in paths.items() if n in ("knn-v0", "knn-v1", "knn-v3", "knn-v4", "prefix-v0-v3")}
    assert {n for n, d in by_name.items() if d.keep} == keep
    assert by_name[paths["prefix-v0-v3"].name].reason == "v3: one of the newest 2; v0: base of open round r-open"
    assert by_name[run["legacy"].stem].reason == "older cache layout, never read"
    going = {paths["knn-v2"].name, paths["store-v2"].name, paths["prefix-old"].name, run["legacy"].stem,
             run["partial"].name}
    assert {n for n, d in by_name.items() if not d.keep} == going
    expected = sum(d.entry.size for d in decisions if not d.keep)
    assert caches.prune(decisions, dry_run=True) == expected and all(p.exists() for p in paths.values())
    assert caches.prune(decisions) == expected
    for name, path in paths.items():
        assert path.exists() == (path.name in keep), name
    assert not run["legacy"].exists() and not run["partial"].exists()
    assert {e.name for c in caches.cache_dirs(run["cfg"]) for e in c.list()} == keep


def test_a_recent_unfinished_write_is_left_alone(run):
    now = time.time()
    os.utime(run["partial"] / "index.faiss", (now, now))
    decision = next(d for d in caches.plan(run["cfg"]) if d.entry.name == run["partial"].name)
    assert decision.keep and "in progress" in decision.reason


def test_cache_list_and_prune_commands(run, capsys):
    args = ["--run-dir", str(run["run"])]
    assert main(["cache", "list", *args]) == 0
    out = capsys.readouterr().out
    assert "knn" in out and "legacy" in out and "prune: version untrained not kept" in out
    assert main(["cache", "list", "--json", *args]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["folder"] for r in rows} == {"influence", "store"}
    assert all({"size", "versions", "keep"} <= set(r) for r in rows)
    assert main(["cache", "prune", "--dry-run", *args]) == 0
    out = capsys.readouterr().out
    assert f"would remove store/{run['paths']['store-v2'].name} (store, 5.1 KiB): version v2 not kept" in out
    assert "would remove 5 caches, freeing " in out and "; 5 kept" in out
    assert run["paths"]["store-v2"].exists()
    assert main(["cache", "prune", "--keep", "0", *args]) == 0  # v3, v4 are no longer protected
    out = capsys.readouterr().out
    assert f"removed influence/{run['paths']['knn-v4'].name}" in out and "caches, freed " in out and "; 3 kept" in out
    left = {e.name for c in caches.cache_dirs(run["cfg"]) for e in c.list()}
    assert left == {run["paths"][n].name for n in ("knn-v0", "knn-v1", "prefix-v0-v3")}  # served, open round
    assert main(["cache", "prune", "--keep", "-1", *args]) == 1
    assert "must be 0 or more" in capsys.readouterr().err


def test_cache_keep_versions_is_checked_at_load():
    assert load_config().influence.cache_keep_versions == 2
    assert load_config(overrides=["influence.cache_keep_versions=5"]).influence.cache_keep_versions == 5
    with pytest.raises(ConfigError, match="cache_keep_versions"):
        load_config(overrides=["influence.cache_keep_versions=-1"])
