"""The artifact helper: round trip, atomic writes, a mismatched key refused unread, listing, and the caches on it."""

import json
import os

import numpy as np
import pytest

from hildif.utils.artifacts import ArtifactDir, ArtifactKeyError, key_digest

KEY = {"model": "abc123", "data": "d0", "n": 3, "dim": (4, 2)}


def _write(cache, key=KEY, version="v1", value=1.0):
    with cache.write("store", key, version=version, info={"n": 3}) as tmp:
        np.save(tmp / "rows.npy", np.full((3, 4), value, dtype=np.float32))
    return cache.path("store", key)


def test_round_trip_names_the_folder_by_its_key_and_records_versions(tmp_path):
    cache = ArtifactDir(tmp_path)
    assert cache.find("store", KEY) is None  # nothing yet
    folder = _write(cache)
    assert folder.name == f"store-{key_digest(KEY)}" and sorted(p.name for p in folder.iterdir()) == [
        "artifact.json", "rows.npy"]
    found = cache.find("store", dict(KEY), version="v2")  # another version reads it: recorded
    assert found == folder and np.load(found / "rows.npy").tolist() == [[1.0] * 4] * 3
    meta = cache.meta(found)
    assert meta["key"] == {"model": "abc123", "data": "d0", "n": 3, "dim": [4, 2]} and meta["info"] == {"n": 3}
    assert meta["versions"] == ["v1", "v2"] and meta["kind"] == "store" and meta["digest"] == key_digest(KEY)
    cache.find("store", KEY, version="v2")
    assert cache.meta(found)["versions"] == ["v1", "v2"]  # once each


def test_a_crash_inside_the_writer_leaves_no_readable_artifact(tmp_path):
    cache = ArtifactDir(tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        with cache.write("store", KEY, version="v1") as tmp:
            np.save(tmp / "rows.npy", np.zeros((3, 4), dtype=np.float32))
            raise RuntimeError("killed mid-write")
    assert cache.find("store", KEY) is None and list(tmp_path.iterdir()) == []  # no partial folder, nothing left
    # over an existing artifact: the old one stays whole and readable
    folder = _write(cache, value=1.0)
    with pytest.raises(RuntimeError):
        with cache.write("store", KEY, version="v9") as tmp:
            np.save(tmp / "rows.npy", np.full((3, 4), 2.0, dtype=np.float32))
            raise RuntimeError("killed")
    assert cache.find("store", KEY) == folder and float(np.load(folder / "rows.npy")[0, 0]) == 1.0
    assert cache.meta(folder)["versions"] == ["v1"]
    # a rewrite that completes replaces it in one rename
    _write(cache, version="v3", value=3.0)
    assert float(np.load(folder / "rows.npy")[0, 0]) == 3.0 and cache.meta(folder)["versions"] == ["v3"]
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_a_mismatched_key_is_refused_with_a_clear_error_and_never_read(tmp_path, monkeypatch):
    cache = ArtifactDir(tmp_path)
    folder = _write(cache)
    meta = cache.meta(folder)
    meta["key"]["model"] = "other-weights"  # e.g. another artifact copied under this name
    (folder / "artifact.json").write_text(json.dumps(meta))
    opened = []
    monkeypatch.setattr(np, "load", lambda *a, **k: opened.append(a))
    with pytest.raises(ArtifactKeyError, match=r"store-\w+ was written for another key .*differing: model\); not read"):
        cache.find("store", KEY, version="v2")
    assert opened == [] and cache.meta(folder)["versions"] == ["v1"]  # no data file opened, no user recorded
    (folder / "artifact.json").write_text("{not json")
    with pytest.raises(ArtifactKeyError, match="unreadable"):
        cache.find("store", KEY)


def test_listing_shows_artifacts_legacy_files_and_unfinished_writes(tmp_path):
    cache = ArtifactDir(tmp_path)
    folder = _write(cache, version="v1")
    with cache.write("knn", {"model": "m"}, version="v2") as tmp:
        (tmp / "index.faiss").write_bytes(b"x" * 1000)
    (tmp_path / "knn-0123456789abcdef0123.faiss").write_bytes(b"y" * 500)  # the flat layout before artifacts
    (tmp_path / "knn-0123456789abcdef0123.json").write_text(json.dumps({"model_version": "v0"}))
    (tmp_path / ".prefix-feedfeedfeedfeedfeed.ab12cd.tmp").mkdir()  # a write cut off by a crash
    (tmp_path / "notes.txt").write_text("not a cache")
    entries = {e.name: e for e in cache.list()}
    assert set(entries) == {folder.name, f"knn-{key_digest({'model': 'm'})}", "knn-0123456789abcdef0123",
                            ".prefix-feedfeedfeedfeedfeed.ab12cd.tmp"}
    store = entries[folder.name]
    assert (store.kind, store.state, store.versions) == ("store", "ok", ("v1",))
    assert store.size == sum(f.stat().st_size for f in folder.iterdir()) and store.created.endswith("Z")
    legacy = entries["knn-0123456789abcdef0123"]
    assert (legacy.kind, legacy.state, legacy.versions, len(legacy.paths)) == ("knn", "legacy", ("v0",), 2)
    assert legacy.size > 500
    assert entries[".prefix-feedfeedfeedfeedfeed.ab12cd.tmp"].state == "partial"
    freed = ArtifactDir.remove(store)
    assert freed == store.size and not folder.exists() and cache.find("store", KEY) is None
    assert ArtifactDir.remove(legacy) == legacy.size and not (tmp_path / "knn-0123456789abcdef0123.json").exists()
    assert (tmp_path / "notes.txt").exists()


def test_the_three_caches_are_artifacts_and_refuse_a_stale_one(tiny_clf, mnli_train_sample, tmp_path, monkeypatch):
    """kNN index, gradient store and prefixes write artifacts; one whose key was altered is rebuilt, not read."""
    import faiss

    from hildif.config import InfluenceConfig
    from hildif.influence.engine import InfluenceEngine
    from hildif.influence.knn import FeatureIndex
    from hildif.influence.store import GradientStore

    train = list(mnli_train_sample[:40])
    index = FeatureIndex.build_or_load(tiny_clf, train, "flat", cache_dir=tmp_path)
    cfg = InfluenceConfig(params="classifier\\.", store_dim=32, prefix_cache=True, hessian_samples=8)
    engine = InfluenceEngine(tiny_clf, train, cfg, prefix_dir=tmp_path)
    store = GradientStore.build_or_load(engine, cfg.store_dim, tmp_path)
    kinds = sorted((e.kind, e.state, e.versions) for e in ArtifactDir(tmp_path).list())
    assert ("knn", "ok", (tiny_clf.version,)) in kinds and ("store", "ok", (tiny_clf.version,)) in kinds
    for artifact in (index.path, store.path):
        meta = json.loads((artifact / "artifact.json").read_text())
        meta["key"]["data"] = "another pool"
        (artifact / "artifact.json").write_text(json.dumps(meta))
    reads = []
    real = faiss.read_index
    monkeypatch.setattr(faiss, "read_index", lambda *a: reads.append(a) or real(*a))
    again = FeatureIndex.build_or_load(tiny_clf, train, "flat", cache_dir=tmp_path)
    assert not again.from_cache and reads == []  # rebuilt; the stale file was never opened
    assert FeatureIndex.build_or_load(tiny_clf, train, "flat", cache_dir=tmp_path).from_cache  # the rebuilt one
    rebuilt = GradientStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path)
    assert not rebuilt.from_cache and rebuilt.key == store.key
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))  # no temporary folder left behind


def test_a_complete_cache_of_the_old_flat_layout_is_adopted_once(tiny_clf, mnli_train_sample, tmp_path):
    """knn-<key>.faiss + knn-<key>.json (the layout before artifacts, same key digest) moves into the artifact and is
    read from there; flat files whose JSON names another key are not adopted, never read, and pruned as legacy."""
    import shutil

    from hildif.influence.knn import FeatureIndex

    train = list(mnli_train_sample[:30])
    built = FeatureIndex.build_or_load(tiny_clf, train, "flat", cache_dir=tmp_path / "new")
    flat = tmp_path / "old"
    flat.mkdir()
    shutil.copy(built.path / "index.faiss", flat / f"knn-{built.key}.faiss")
    (flat / f"knn-{built.key}.json").write_text(json.dumps({"key": built.key, "model_version": "v-old", "n": 30}))
    adopted = FeatureIndex.build_or_load(tiny_clf, train, "flat", cache_dir=flat)
    assert adopted.from_cache and adopted.path == flat / f"knn-{built.key}"
    assert sorted(os.listdir(flat)) == [f"knn-{built.key}"]  # the flat files moved in
    meta = ArtifactDir(flat).meta(adopted.path)
    assert meta["versions"] == ["v-old", tiny_clf.version] and meta["info"] == {"n": 30}
    assert meta["key"] == FeatureIndex.key_parts(tiny_clf, train, "flat")
    # flat files whose metadata names another key: left alone, the index rebuilt beside them
    shutil.rmtree(adopted.path)
    shutil.copy(built.path / "index.faiss", flat / f"knn-{built.key}.faiss")
    (flat / f"knn-{built.key}.json").write_text(json.dumps({"key": "0" * 20}))
    assert not FeatureIndex.build_or_load(tiny_clf, train, "flat", cache_dir=flat).from_cache
    assert [e.state for e in ArtifactDir(flat).list()] == ["ok", "legacy"]
