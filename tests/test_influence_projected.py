"""The projected gradient store (influence.store_build = projected; hildif.influence.projected): per-example
projected gradients from hooks equal the projection of the explicit per-example gradients for every kind of
influence parameter, its Gauss-Newton curvature equals the explicit one projected, its ranking is the engine's where
the curvature is exact, and a store of other weights, another pool or another projection is never read."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from hildif.config import ConfigError, InfluenceConfig
from hildif.influence.engine import InfluenceEngine
from hildif.influence.explain import explain, rank
from hildif.influence.projected import BIAS, LINEAR, LN_BIAS, LN_WEIGHT, ProjectedCurvature, exact_batch_dots, projected_batch
from hildif.influence.store import GradientStore, ProjectedStore, _pool_batches


def _cfg(**kw) -> InfluenceConfig:
    base = dict(k=30, top_p=5, solver="cg", hessian_samples=16, grad_batch_size=16, candidates="store",
                store_dim=512, store_rerank=30, store_build="projected")
    base.update(kw)
    return InfluenceConfig(**base)


def _explicit_ce_gradients(engine: InfluenceEngine, batch) -> torch.Tensor:
    """Each example's gradient of its cross-entropy alone: vmap(grad) of the loss minus the weight-decay term's."""
    obj = engine.objective
    return (obj.per_example_grads(batch) - 2 * obj.weight_decay * obj.decay * obj.theta).double()


def _reference_projection(proj, flat: torch.Tensor) -> torch.Tensor:
    """P_out^T W P_in for every weight, P^T b for biases and LayerNorm vectors, written out block by block."""
    parts = []
    for b in proj.blocks:
        g = flat[:, b.offset : b.offset + b.numel]
        if b.kind == LINEAR:
            p_out, p_in = proj.p_out[b.module].double(), proj.p_in[b.module].double()
            parts.append(torch.einsum("ok,boi,ij->bkj", p_out, g.reshape(-1, *b.shape), p_in).reshape(len(g), -1))
        else:
            side = proj.p_out[b.module] if b.kind == BIAS else proj.p_vec[b.name]
            parts.append(g @ side.double())
    return torch.cat(parts, dim=1)


def test_projected_gradients_equal_the_projection_of_explicit_gradients_for_every_layer_kind(
        tiny_clf, mnli_train_sample):
    train = list(mnli_train_sample[:45])
    for dim in (512, 10**6):  # a real projection (k < d), and square orthogonal sides (the gradient, rotated)
        engine = InfluenceEngine(tiny_clf, train, _cfg(params="fastif", store_dim=dim))
        proj = ProjectedStore.projection(engine, dim, seed=3)
        kinds = {b.kind for b in proj.blocks}
        modules = {b.module.split("layer.")[-1] for b in proj.blocks}
        assert kinds == {LINEAR, BIAS, LN_WEIGHT, LN_BIAS} and proj.size <= dim
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                     "intermediate.dense", "output.dense", "attention.output.LayerNorm", "output.LayerNorm"):
            assert any(m.endswith(part) for m in modules), part
        assert {"bert.pooler.dense", "classifier"} <= {b.module for b in proj.blocks}
        assert sum(b.numel for b in proj.blocks) == engine.objective.size
        for side in (*proj.p_in.values(), *proj.p_out.values(), *proj.p_vec.values()):
            d, k = side.shape
            torch.testing.assert_close(side.T @ side, d / k * torch.eye(k), atol=1e-4, rtol=1e-4)
        if dim == 512:
            assert proj.k < 32
        else:
            assert proj.size == engine.objective.size
        seen = padded = 0
        for idx, batch in _pool_batches(engine, False, "test"):
            got, logits, feats = projected_batch(engine.split, proj, batch)
            explicit = _explicit_ce_gradients(engine, batch)
            want = _reference_projection(proj, explicit)
            scale = float(want.abs().max())
            torch.testing.assert_close(got.double(), want, atol=2e-5 * scale, rtol=1e-4)
            torch.testing.assert_close(proj(explicit), want, atol=1e-9 * scale, rtol=1e-9)
            # the exact scorer from the same hooks: vectors dotted with the exact gradients, layer by layer
            vecs = torch.randn(3, engine.objective.size, generator=torch.Generator().manual_seed(len(idx)))
            exact = explicit @ vecs.double().T
            torch.testing.assert_close(exact_batch_dots(engine.split, proj, batch, vecs), exact,
                                       atol=2e-5 * float(exact.abs().max()), rtol=1e-4)
            if dim > 512:  # orthogonal: the norms are the gradients' own
                torch.testing.assert_close(got.double().norm(dim=1), explicit.norm(dim=1), rtol=1e-4, atol=1e-7)
            # the same pass gives the kNN features (the pooler's output) and the logits
            np.testing.assert_allclose(feats.numpy(), tiny_clf.features([train[i] for i in idx]), rtol=1e-4,
                                       atol=1e-5)
            assert logits.shape == (len(idx), 2)
            seen += len(idx)
            padded += int((batch["attention_mask"] == 0).sum())
        assert seen == len(train) and len(batch["labels"]) < 16 and padded  # padded batches of several sizes
        # the adjoint is the transpose
        q = torch.randn(proj.size, dtype=torch.float64)
        x = torch.randn(engine.objective.size, dtype=torch.float64)
        assert abs(float(proj(x) @ q) - float(x @ proj.adjoint(q))) < 1e-8 * float(x.norm() * q.norm())


def test_embeddings_are_refused_by_the_projected_build(tiny_clf, mnli_train_sample):
    engine = InfluenceEngine(tiny_clf, list(mnli_train_sample[:8]), _cfg(params="all"))
    with pytest.raises(ConfigError, match="store_build=projected"):
        ProjectedStore.build_or_load(engine, 512)


def _explicit_hessian(engine: InfluenceEngine, sample) -> torch.Tensor:
    op = engine.hessian_operator(sample)
    eye = torch.eye(engine.objective.size)
    return torch.stack([op(eye[i]) for i in range(engine.objective.size)]).double()


SMALL_PARAMS = r"layer\.1\.attention\.output|classifier"  # a linear layer, its bias, a LayerNorm and the head


def test_gauss_newton_curvature_equals_the_explicit_one_projected(tiny_clf, mnli_train_sample):
    train = list(mnli_train_sample[:40])
    engine = InfluenceEngine(tiny_clf, train, _cfg(params=SMALL_PARAMS, store_dim=300))
    store = ProjectedStore.build_or_load(engine, 300)
    proj = store.projector
    assert proj.k < 32
    sample = engine.hessian_sample()
    batch = engine.batch(sample)
    obj = engine.objective
    with engine._mode():
        jac = torch.func.jacrev(lambda t: engine.split.logits(obj.unflatten(t), batch))(obj.theta).double()
        probs = torch.softmax(engine.split.logits(obj.unflatten(obj.theta), batch).double(), dim=-1)
    lam = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]
    ggn = (torch.einsum("bcp,bcd,bdq->pq", jac, lam, jac) / len(sample)).detach()
    want = proj(proj(ggn).T)  # P^T GGN P
    factor = store.curvature.factor
    got = factor @ factor.T
    torch.testing.assert_close(got, want, atol=1e-6 * float(want.abs().max()), rtol=1e-4)
    # the damping: lambda, plus 2 wd (d_out d_in / k_out k_in) on the decayed weight's coordinates
    damp = store.curvature.damping
    assert float(damp.min()) == pytest.approx(engine.damping_total)
    w = next(b for b in proj.blocks if b.kind == LINEAR and b.decayed)
    ratio = w.shape[0] * w.shape[1] / (proj.p_out[w.module].shape[1] * proj.p_in[w.module].shape[1])
    assert float(damp[w.start]) == pytest.approx(engine.damping_total + 2 * obj.weight_decay * ratio)
    # Woodbury's solve is the dense solve
    q = torch.randn(proj.size, dtype=torch.float64)
    dense = torch.linalg.solve(got + torch.diag(damp), q)
    torch.testing.assert_close(store.curvature.solve(q), dense, rtol=1e-8, atol=1e-12)


def test_fast_ranking_is_the_engines_where_the_curvature_is_exact(tiny_clf, mnli_train_sample, hans_sample):
    """A square orthogonal projection and the explicit Hessian (weight decay included) as the projected curvature:
    the store's whole-pool scores are the engine's exact-solver scores, at a damping small enough that the Hessian
    changes the ranking (gradient dot products alone rank otherwise)."""
    train = list(mnli_train_sample[:60])
    probe = InfluenceEngine(tiny_clf, train, _cfg(params=SMALL_PARAMS))
    h = _explicit_hessian(probe, probe.hessian_sample())
    lam = 1e-3 + 1.1 * max(0.0, -float(torch.linalg.eigvalsh(h).min()))
    cfg = _cfg(params=SMALL_PARAMS, damping=lam, scale=1.0, store_dim=10**6, solver="exact")
    engine = InfluenceEngine(tiny_clf, train, cfg)
    rows32 = torch.zeros(len(train), engine.objective.size, dtype=torch.float64)
    store = ProjectedStore.build_or_load(engine, cfg.store_dim,
                                         on_batch=lambda idx, rows, _f: rows32.__setitem__(idx, rows.double()))
    proj = store.projector
    assert proj.size == engine.objective.size
    store.curvature = ProjectedCurvature(torch.full((proj.size,), engine.damping_total, dtype=torch.float64),
                                         dense=proj(proj(h).T))
    changed = 0
    for anchor in hans_sample[:3]:
        v = engine.anchor_gradient(anchor)
        s_test = engine.s_test(v).s_test
        oracle = engine.influence(s_test, range(len(train)))
        # the projected solve, mapped back, is the engine's s_test
        q = store.fast_query(v)
        torch.testing.assert_close(proj.adjoint(q), s_test.double(), rtol=1e-4, atol=1e-5 * float(s_test.abs().max()))
        # the whole pool scored from the pass's projected rows: the engine's ranking and scores
        fast = -(rows32 @ q).numpy() - float(proj.adjoint(q) @ store.penalty)
        np.testing.assert_allclose(fast, oracle, rtol=1e-4, atol=1e-5 * np.abs(oracle).max())
        assert rank(fast, 10).tolist() == rank(oracle, 10).tolist()
        # and from the store's float16 rows, to their precision
        got = store.fast_influence(v)
        np.testing.assert_allclose(got, oracle, rtol=2e-3, atol=2e-3 * np.abs(oracle).max())
        assert set(rank(got, 5).tolist()) <= set(rank(oracle, 10).tolist())
        changed += rank(-engine.gradient_dots(v, range(len(train))), 10).tolist() != rank(oracle, 10).tolist()
    assert changed  # the curvature mattered


def test_projected_store_mode_explains_with_the_engines_exact_scores(tiny_clf, mnli_train_sample, hans_sample,
                                                                     tmp_path):
    """explain() with candidates=store, store_build=projected: the re-ranking is the engine's, and the store is the
    projected one (read back from the store folder)."""
    train = list(mnli_train_sample[:120])
    anchors = list(hans_sample[:2])
    cfg = _cfg(store_rerank=len(train))
    engine = InfluenceEngine(tiny_clf, train, cfg)
    res = explain(tiny_clf, train, anchors, cfg, cache_dir=tmp_path / "knn", store_dir=tmp_path / "store",
                  progress=False, engine=engine)
    assert list((tmp_path / "knn").glob("knn-*/index.faiss"))  # the store's pass gave the kNN index its features
    store = GradientStore.build_or_load(engine, cfg.store_dim, tmp_path / "store")
    assert isinstance(store, ProjectedStore) and store.from_cache
    ids = {e.id: i for i, e in enumerate(train)}
    for anchor, r in zip(anchors, res):
        v = engine.anchor_gradient(anchor)
        oracle = engine.influence(engine.s_test(v).s_test, range(len(train)))
        top = rank(oracle, cfg.top_p)
        assert [ids[i.example.id] for i in r.influential] == top.tolist()
        np.testing.assert_allclose([i.score for i in r.influential], oracle[top], rtol=1e-5, atol=1e-9)
        # the fast path's own scores (an untrained model: near ties, so no ranking is compared here)
        assert np.corrcoef(store.fast_influence(v), oracle)[0, 1] > 0.9


def test_a_stale_projected_store_is_never_read(tiny_clf, mnli_train_sample, tmp_path):
    train = list(mnli_train_sample[:50])
    cfg = _cfg()
    engine = InfluenceEngine(tiny_clf, train, cfg)
    first = ProjectedStore.build_or_load(engine, cfg.store_dim, tmp_path)
    assert not first.from_cache and isinstance(first.rows, np.memmap)
    meta = json.loads((tmp_path / f"store-{first.key}" / "artifact.json").read_text())
    assert meta["digest"] == first.key and meta["key"]["projection"] == "factored/v1" and meta["key"]["dim"] == first.dim
    assert not list(tmp_path.glob(".*.tmp"))  # streamed into a temporary folder, renamed when complete
    again = ProjectedStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path)
    assert again.from_cache and again.key == first.key
    np.testing.assert_array_equal(np.asarray(again.rows), np.asarray(first.rows))
    torch.testing.assert_close(again.curvature.factor, first.curvature.factor.float().double())
    # the exact store of the same model is another store, and the one the defaults build
    assert GradientStore.cache_key(engine, cfg.store_dim, cfg.seed) != first.key
    assert (InfluenceConfig().store_build, InfluenceConfig().candidates) == ("exact", "knn")
    exact = GradientStore.build_or_load(InfluenceEngine(tiny_clf, train, _cfg(store_build="exact")), 64, tmp_path)
    assert type(exact) is GradientStore and exact.key == GradientStore.cache_key(engine, 64, cfg.seed)
    # another projection (seed, size), another pool, another Hessian sample: other keys
    assert ProjectedStore.build_or_load(engine, cfg.store_dim, tmp_path, seed=1).key != first.key
    assert ProjectedStore.build_or_load(engine, 256, tmp_path).key != first.key
    other_pool = InfluenceEngine(tiny_clf, train[:40] + list(mnli_train_sample[60:70]), cfg)
    assert ProjectedStore.build_or_load(other_pool, cfg.store_dim, tmp_path).key != first.key
    assert ProjectedStore.projected_key(InfluenceEngine(tiny_clf, train, _cfg(hessian_samples=8)),
                                        first.projector) != first.key
    # a store's files under another key's name (copied, renamed): refused by its metadata, rebuilt
    other = ProjectedStore.build_or_load(engine, cfg.store_dim, tmp_path, seed=2)
    shutil.rmtree(tmp_path / f"store-{first.key}")
    shutil.copytree(tmp_path / f"store-{other.key}", tmp_path / f"store-{first.key}")
    assert not ProjectedStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path).from_cache
    # other weights: a new key and other rows
    with torch.no_grad():
        tiny_clf.model.classifier.weight.add_(0.05 * torch.randn_like(tiny_clf.model.classifier.weight))
    changed = ProjectedStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim, tmp_path)
    assert not changed.from_cache and changed.key != first.key
    assert not np.array_equal(np.asarray(changed.rows), np.asarray(first.rows))
    # an incomplete store (no curvature file) is rebuilt
    (tmp_path / f"store-{changed.key}" / "curvature.npy").unlink()
    assert not ProjectedStore.build_or_load(InfluenceEngine(tiny_clf, train, cfg), cfg.store_dim,
                                            tmp_path).from_cache
