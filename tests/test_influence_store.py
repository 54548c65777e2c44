"""The gradient store (hildif.influence.store): the projection keeps inner products within its variance bound, the
store follows the model version, and the store mode's re-ranking gives the engine's exact scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hildif.config import InfluenceConfig
from hildif.influence.engine import InfluenceEngine
from hildif.influence.explain import explain, rank
from hildif.influence.store import CountSketch, GradientStore


def _cfg(**kw) -> InfluenceConfig:
    base = dict(k=30, top_p=5, solver="cg", hessian_samples=16, grad_batch_size=16, candidates="store",
                store_dim=256, store_rerank=30)
    base.update(kw)
    return InfluenceConfig(**base)


def _pool_gradients(engine: InfluenceEngine) -> torch.Tensor:
    grads = torch.zeros(len(engine.train), engine.objective.size, dtype=torch.float64)
    for idx, batch, _ in engine.sweep_pool():
        grads[idx] = engine.objective.per_example_grads(batch).double()
    return grads


def test_countsketch_keeps_inner_products_within_the_dimension_bound(tiny_clf, mnli_train_sample):
    """E[Sx.Sy] = x.y and Var <= 2|x|^2|y|^2/dim: on the tiny model's real per-example gradients, the normalised
    errors (Sx.Sy - x.y) / (|x||y|) have a mean square below 2/dim (with sampling slack) and shrink with dim; by
    Chebyshev at most 1/16 of the pairs may leave 4 standard deviations."""
    engine = InfluenceEngine(tiny_clf, list(mnli_train_sample[:48]), _cfg())
    g = _pool_gradients(engine).float()
    norms = g.norm(dim=1)
    exact = (g @ g.T).double()
    iu = torch.triu_indices(len(g), len(g))  # the diagonal too: norms are inner products
    scale = (norms[:, None] * norms[None, :]).double()[iu[0], iu[1]]
    mean_sq = {}
    for dim in (16, 64, 256):
        errs = []
        for seed in range(32):  # one sketch serves all pairs: the seeds are the samples
            s = CountSketch(g.shape[1], dim, seed)
            pg = s(g).double()
            errs.append(((pg @ pg.T - exact)[iu[0], iu[1]] / scale))
        err = torch.cat(errs)
        bound = 2.0 / dim
        mean_sq[dim] = float((err ** 2).mean())
        assert mean_sq[dim] <= 1.5 * bound, (dim, mean_sq[dim], bound)
        assert float((err.abs() > 4 * math.sqrt(bound)).double().mean()) <= 1 / 16
    assert mean_sq[256] < mean_sq[16]
    with pytest.raises(ValueError, match="store_dim"):
        CountSketch(10, 0)


def test_store_scores_the_pool_and_follows_the_model_version(tiny_clf, mnli_train_sample, tmp_path):
    train = list(mnli_train_sample[:80])
    cfg = _cfg()
    engine = InfluenceEngine(tiny_clf, train, cfg)
    store = GradientStore.build_or_load(engine, cfg.store_dim, tmp_path)
    assert not store.from_cache and store.size == len(train) and store.dim == 256
    assert store.rows.dtype == np.float16 and (tmp_path / f"store-{store.key}" / "rows.npy").exists()
    assert len(engine._items) == len(train)  # the same pass kept every frozen prefix
    # the store's dot products approximate the engine's exact ones within the projection's bound
    v = engine.anchor_gradient(train[0])
    exact = engine.gradient_dots(v, range(len(train)))
    approx = store.dots(v)
    g_norms = _pool_gradients(engine).norm(dim=1).numpy()
    err = (approx - exact) / (float(v.norm()) * g_norms)
    # one sketch for every example (their errors move together): each within 4 standard deviations of the bound
    assert float(np.abs(err).max()) <= 4 * math.sqrt(2 / cfg.store_dim)
    assert np.corrcoef(approx, exact)[0, 1] > 0.9
    # read back (memory-mapped) under the same key, with the same rows
    again = GradientStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path)
    assert again.from_cache and again.key == store.key and isinstance(again.rows, np.memmap)
    np.testing.assert_array_equal(np.asarray(again.rows), store.rows)
    # a different dimension is a different store
    assert GradientStore.build_or_load(engine, 64, tmp_path).key != store.key
    # the model changes (one SGD step on the head): a new key and a rebuilt store with other rows
    with torch.no_grad():
        tiny_clf.model.classifier.weight.add_(0.05 * torch.randn_like(tiny_clf.model.classifier.weight))
    changed = GradientStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path)
    assert not changed.from_cache and changed.key != store.key
    assert not np.array_equal(np.asarray(changed.rows), store.rows)
    # an incomplete store (no metadata) or one of the wrong size is rebuilt, not read
    (tmp_path / f"store-{changed.key}" / "artifact.json").unlink()
    assert not GradientStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path).from_cache
    np.save(tmp_path / f"store-{changed.key}" / "rows.npy", np.zeros((3, cfg.store_dim), dtype=np.float16))
    assert not GradientStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path).from_cache


def test_store_mode_reranks_with_the_engines_exact_scores(tiny_clf, mnli_train_sample, hans_sample, tmp_path):
    train = list(mnli_train_sample[:120])
    anchors = list(hans_sample[:2])
    cfg = _cfg(store_rerank=len(train))  # every example re-scored: the exact full-pool ranking
    engine = InfluenceEngine(tiny_clf, train, cfg)
    res = explain(tiny_clf, train, anchors, cfg, cache_dir=tmp_path / "knn", store_dir=tmp_path / "store",
                  progress=False, engine=engine)
    assert list((tmp_path / "knn").glob("knn-*/index.faiss"))  # the store's pass also gave the kNN index its features
    ids = {e.id: i for i, e in enumerate(train)}
    for anchor, r in zip(anchors, res):
        s = engine.s_test(engine.anchor_gradient(anchor)).s_test
        oracle = engine.influence(s, range(len(train)))
        top = rank(oracle, cfg.top_p)
        assert [ids[i.example.id] for i in r.influential] == top.tolist()
        np.testing.assert_allclose([i.score for i in r.influential], oracle[top], rtol=1e-5, atol=1e-9)
        assert r.details["store"]["exact"] and r.details["candidates"] == len(train)
    # a short re-ranking: its scores are still the engine's own for the examples shown
    short = explain(tiny_clf, train, anchors[:1], _cfg(store_rerank=20), store_dir=tmp_path / "store",
                    progress=False, engine=engine)[0]
    s = engine.s_test(engine.anchor_gradient(anchors[0])).s_test
    direct = engine.influence(s, [ids[i.example.id] for i in short.influential])
    np.testing.assert_allclose(direct, [i.score for i in short.influential], rtol=1e-5, atol=1e-9)
    assert short.details["store"]["from_cache"] and short.details["candidates"] == 20
    # no re-ranking: the store's approximate scores, most negative first; harmful: most positive first
    approx = explain(tiny_clf, train, anchors[:1], _cfg(store_rerank=0), store_dir=tmp_path / "store",
                     progress=False, engine=engine)[0]
    scores = [i.score for i in approx.influential]
    assert scores == sorted(scores) and not approx.details["store"]["exact"]
    harmful = explain(tiny_clf, train, anchors[:1], _cfg(store_rerank=0), store_dir=tmp_path / "store",
                      progress=False, engine=engine, harmful=True)[0]
    hs = [i.score for i in harmful.influential]
    assert hs == sorted(hs, reverse=True) and hs[0] > scores[0]
    with pytest.raises(ValueError, match="influence.candidates"):
        explain(tiny_clf, train, anchors, _cfg(candidates="all"), progress=False, engine=engine)


# ---------------------------------------------------------------------------------------------- later rounds
# the tiny model's top block, pooler and head: its embeddings and block 0 are the frozen prefix
TOP_PARAMS = r"layer\.1\.|pooler|classifier"


def _fine_tune(clf, examples, train_params: str, params: str = TOP_PARAMS) -> None:
    """A real FINE_TUNE (a few AdamW steps of the training loop) with ``finetune.train_params``."""
    from hildif.config import FineTuneConfig
    from hildif.influence.params import restrict_training
    from hildif.model.training import train

    restrict_training(clf.model, train_params, params)
    train(clf, list(examples), FineTuneConfig(max_steps=3, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0),
          progress=False)
    for p in clf.model.parameters():
        p.requires_grad_(True)


def _ranked(results):
    return [[(i.example.id, i.score) for i in r.influential] for r in results]


def test_a_version_with_new_top_layers_reuses_the_prefix_cache_with_the_same_scores(
        tiny_clf, mnli_train_sample, hans_sample, tmp_path):
    """FINE_TUNE of the influence parameters only (finetune.train_params = influence) leaves embeddings and block 0
    bit-for-bit the same: the next version reads the pool's prefixes from the cache (keyed on those weights, not on
    the version) and its store, kNN features and exact scores are exactly those of a fresh build."""
    from hildif.influence.knn import FeatureIndex
    from hildif.influence.prefix_cache import PrefixCache

    train = list(mnli_train_sample[:80])
    anchors = list(hans_sample[:2])
    cfg = _cfg(params=TOP_PARAMS, prefix_cache=True, store_rerank=len(train))
    cache = tmp_path / "influence"
    first = InfluenceEngine(tiny_clf, train, cfg, prefix_dir=cache)
    assert (first.split.kind, first.split.first_layer) == ("layers", 1)
    GradientStore.build_or_load(first, cfg.store_dim, tmp_path / "store1")
    assert not first.prefixes_from_cache and len(list(cache.glob("prefix-*/artifact.json"))) == 1
    old_key = PrefixCache(first.split, train, cache).key
    old_index_key = FeatureIndex.cache_key(tiny_clf, train, "flat")
    frozen = {n: p.detach().clone() for n, p in tiny_clf.model.named_parameters() if n not in first.selection.names}
    top = {n: p.detach().clone() for n, p in tiny_clf.model.named_parameters() if n in first.selection.names}

    _fine_tune(tiny_clf, mnli_train_sample[100:140], "influence")
    params = dict(tiny_clf.model.named_parameters())
    assert all(torch.equal(params[n], t) for n, t in frozen.items())  # the frozen layers: bit for bit
    assert any(not torch.equal(params[n], t) for n, t in top.items())  # the influence layers moved

    reused = InfluenceEngine(tiny_clf, train, cfg, prefix_dir=cache)
    assert PrefixCache(reused.split, train, cache).key == old_key
    store = GradientStore.build_or_load(reused, cfg.store_dim, tmp_path / "store2")
    assert reused.prefixes_from_cache and not store.from_cache
    fresh = InfluenceEngine(tiny_clf, train, cfg)  # no prefix cache: every prefix computed again
    fresh_store = GradientStore.build_or_load(fresh, cfg.store_dim, tmp_path / "store3")
    assert store.key == fresh_store.key
    np.testing.assert_array_equal(store.rows, fresh_store.rows)
    np.testing.assert_array_equal(store.norms, fresh_store.norms)
    # the exact full-pool ranking: the same examples with the same scores, to the bit
    got = explain(tiny_clf, train, anchors, cfg, store_dir=tmp_path / "store2", engine=reused, progress=False)
    want = explain(tiny_clf, train, anchors, cfg, store_dir=tmp_path / "store3", engine=fresh, progress=False)
    assert _ranked(got) == _ranked(want)
    # the kNN mode too: features from the cached prefixes (only block 1 and the pooler run) match a full forward
    knn_cfg = _cfg(params=TOP_PARAMS, prefix_cache=True, candidates="knn", k=40)
    from_cache = InfluenceEngine(tiny_clf, train, knn_cfg, prefix_dir=cache)
    feats = from_cache.pool_features()
    assert from_cache.prefixes_from_cache
    np.testing.assert_allclose(feats, tiny_clf.features(train), rtol=1e-5, atol=1e-6)
    got = explain(tiny_clf, train, anchors, knn_cfg, cache_dir=tmp_path / "knn2", engine=from_cache, progress=False)
    want = explain(tiny_clf, train, anchors, knn_cfg, cache_dir=tmp_path / "knn3", progress=False)
    assert _ranked(got) == _ranked(want)
    # the kNN index reads the encoder: its key moved with block 1 (the head alone would not move it)
    assert FeatureIndex.cache_key(tiny_clf, train, "flat") != old_index_key
    key = FeatureIndex.cache_key(tiny_clf, train, "flat")
    with torch.no_grad():
        tiny_clf.model.classifier.weight.add_(0.1)
    assert FeatureIndex.cache_key(tiny_clf, train, "flat") == key
    assert len(list(cache.glob("prefix-*/artifact.json"))) == 1  # nothing new written: the one cache served every version


def test_a_change_below_the_influence_layers_invalidates_the_prefix_cache(tiny_clf, mnli_train_sample, hans_sample,
                                                                          tmp_path):
    """A FINE_TUNE of every layer (the default) changes block 0: a new key, prefixes computed again (the stale ones
    are not read), and scores equal to a fresh build's. A cache that does not fit the pool is not read either."""
    from hildif.influence.prefix_cache import PrefixCache

    train = list(mnli_train_sample[:60])
    anchors = list(hans_sample[:1])
    cfg = _cfg(params=TOP_PARAMS, prefix_cache=True, store_rerank=len(train))
    cache = tmp_path / "influence"
    first = InfluenceEngine(tiny_clf, train, cfg, prefix_dir=cache)
    first.pool_features()
    old = PrefixCache(first.split, train, cache)
    assert old.path.exists() and not first.prefixes_from_cache
    stale = [dict(first._items[i]) for i in range(len(train))]

    _fine_tune(tiny_clf, mnli_train_sample[100:140], "all")
    again = InfluenceEngine(tiny_clf, train, cfg, prefix_dir=cache)
    assert PrefixCache(again.split, train, cache).key != old.key
    got = explain(tiny_clf, train, anchors, cfg, store_dir=tmp_path / "s2", engine=again, progress=False)
    assert not again.prefixes_from_cache and len(list(cache.glob("prefix-*/artifact.json"))) == 2
    assert not torch.equal(again._items[0]["hidden"], stale[0]["hidden"])
    want = explain(tiny_clf, train, anchors, cfg, store_dir=tmp_path / "s3", engine=InfluenceEngine(tiny_clf, train, cfg),
                   progress=False)
    assert _ranked(got) == _ranked(want)
    # another training set: another key; a cache whose offsets do not fit the pool is recomputed, not read
    assert PrefixCache(again.split, train[:50], cache).key != PrefixCache(again.split, train, cache).key
    current = PrefixCache(again.split, train, cache)
    np.save(current.path / "offsets.npy", np.arange(len(train) + 1, dtype=np.int64) * 10**6)
    assert current.load(torch.device("cpu")) is None
    # every layer selected ("all" = the tokens split): nothing to cache, nothing written
    assert PrefixCache(InfluenceEngine(tiny_clf, train, _cfg(params="all")).split, train, cache).key is None
    with pytest.raises(ValueError, match="finetune.train_params"):
        from hildif.influence.params import restrict_training
        restrict_training(tiny_clf.model, "some", TOP_PARAMS)
