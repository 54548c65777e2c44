"""Influence engine on the tiny BERT: parameter selection, the prefix/tail split, per-example gradients, solvers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from hildif.config import InfluenceConfig
from hildif.data.example import Example
from hildif.influence.engine import InfluenceEngine
from hildif.influence.objective import Objective
from hildif.influence.params import ParameterSelectionError, select_parameters
from hildif.influence.solvers import LissaDivergenceWarning, conjugate_gradient
from hildif.influence.split import SplitModel


@pytest.fixture()
def train(mnli_train_sample):
    return list(mnli_train_sample[:60])


def tiny4(train, num_labels=2):
    from hildif.model.tiny import build_tiny_classifier

    clf = build_tiny_classifier(train, num_layers=4, hidden_size=16, intermediate_size=32, seed=0,
                                num_labels=num_labels)
    clf.model.eval()
    return clf


@pytest.fixture()
def clf4(train):
    return tiny4(train)


NLI3 = ("entailment", "neutral", "contradiction")


@pytest.fixture(params=[2, 3], ids=["2-class", "3-class"])
def task_clf4(request, train):
    """The tiny 4-layer model and training set for the paper's binary task, and for MNLI's three-way labels."""
    if request.param == 2:
        return tiny4(train), train
    three = [Example(e.id, e.premise, e.hypothesis, NLI3.index(e.metadata["gold_label"]), e.metadata) for e in train]
    assert {e.label for e in three} == {0, 1, 2}
    return tiny4(three, 3), three


def test_fastif_selects_last_two_layers_pooler_and_head(clf4):
    sel = select_parameters(clf4.model, "fastif")
    layers = {n.split(".")[3] for n in sel.names if ".layer." in n}
    assert layers == {"2", "3"}
    assert any(".pooler." in n for n in sel.names) and "classifier.weight" in sel.names
    assert not any("embeddings" in n for n in sel.names)
    assert sel.first_layer == 2 and sel.num_layers == 4
    decay = dict(zip(sel.names, sel.decay))
    assert decay["classifier.weight"] and not decay["classifier.bias"]
    assert not decay["bert.encoder.layer.3.output.LayerNorm.weight"]
    head = select_parameters(clf4.model, "head")
    assert head.names == ("classifier.weight", "classifier.bias") and not head.body
    assert len(select_parameters(clf4.model, "all").names) == len(list(clf4.model.parameters()))
    assert select_parameters(clf4.model, r"layer\.3\.output\.dense").names == (
        "bert.encoder.layer.3.output.dense.weight", "bert.encoder.layer.3.output.dense.bias")
    with pytest.raises(ParameterSelectionError, match="selects no parameter"):
        select_parameters(clf4.model, "no_such_param")
    with pytest.raises(ParameterSelectionError, match="regular expression"):
        select_parameters(clf4.model, "layer[")


def test_fastif_pattern_on_roberta_layout():
    """Name patterns are not BERT-only: a RoBERTa classifier (no pooler, dense+out_proj head) built in code."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    cfg = RobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=40, num_labels=2)
    model = RobertaForSequenceClassification(cfg)
    sel = select_parameters(model, "fastif")
    assert {n.split(".")[3] for n in sel.names if ".layer." in n} == {"1", "2"}
    assert "classifier.out_proj.weight" in sel.names
    assert select_parameters(model, "head").names == tuple(n for n, _ in model.named_parameters()
                                                          if n.startswith("classifier."))


@pytest.mark.parametrize("spec,kind", [("fastif", "layers"), ("head", "head"), ("all", "tokens")])
def test_tail_of_prefix_equals_model_logits(clf4, train, spec, kind):
    split = SplitModel(clf4, select_parameters(clf4.model, spec))
    assert split.kind == kind
    assert split.tail.first_token_last == (kind != "head")  # the last block runs for [CLS] only
    items = split.prefix(train[:12], batch_size=5)
    batch = split.collate(items, [e.label for e in train[:12]])
    obj = Objective(split, 0.005)
    got = split.logits(obj.unflatten(obj.theta), batch)
    with torch.no_grad():
        ref = clf4.model(**clf4.encode(train[:12])).logits
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec", ["fastif", "head"])
def test_prefix_and_features_give_the_prefix_and_the_classifier_features(clf4, train, spec):
    split = SplitModel(clf4, select_parameters(clf4.model, spec))
    items, feats = split.prefix_and_features(train[:15], batch_size=4)
    for got, ref in zip(items, split.prefix(train[:15], batch_size=6)):
        assert got.keys() == ref.keys()
        for key in got:
            torch.testing.assert_close(got[key], ref[key], atol=1e-6, rtol=1e-5)
    assert feats.dtype == np.float32
    np.testing.assert_allclose(feats, clf4.features(train[:15]), atol=1e-5, rtol=1e-4)


def test_engine_pool_features_keep_every_prefix_within_the_memory_budget(clf4, train):
    eng = InfluenceEngine(clf4, train, InfluenceConfig())
    feats = eng.pool_features()
    assert feats.shape == (len(train), clf4.model.config.hidden_size) and len(eng._items) == len(train)
    np.testing.assert_allclose(feats, clf4.features(train), atol=1e-5, rtol=1e-4)
    vec = torch.randn(eng.objective.size, generator=torch.Generator().manual_seed(6))
    lazy = InfluenceEngine(clf4, train, InfluenceConfig())
    np.testing.assert_allclose(eng.gradient_dots(vec, range(20)), lazy.gradient_dots(vec, range(20)), rtol=1e-5,
                               atol=1e-6)
    tight = InfluenceEngine(clf4, train, InfluenceConfig(prefix_memory_mb=0))
    assert tight.pool_features() is None and not tight._items
    assert InfluenceEngine(clf4, train, InfluenceConfig(params="all")).pool_features() is None
    with pytest.raises(ValueError, match="cannot give kNN features"):
        SplitModel(clf4, select_parameters(clf4.model, "all")).prefix_and_features(train[:3])


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_first_token_block_equals_the_whole_block_at_the_first_token(arch):
    """The last block computed for [CLS] only gives the block's output at position 0, padding included."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    from hildif.influence.split import additive_mask, first_token_block, first_token_block_supported

    kw = dict(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
              max_position_embeddings=40, attn_implementation="eager")
    torch.manual_seed(0)
    model = (BertModel(BertConfig(**kw)) if arch == "bert" else RobertaModel(RobertaConfig(**kw))).eval()
    layer = model.encoder.layer[-1]
    assert first_token_block_supported(model, layer)
    hidden = torch.randn(3, 7, 16)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    add = additive_mask(mask, hidden.dtype)
    with torch.no_grad():
        full = layer(hidden, add)
        full = full[0] if isinstance(full, tuple) else full
        torch.testing.assert_close(first_token_block(layer, hidden, add), full[:, :1], atol=1e-6, rtol=1e-5)


def test_first_token_block_is_not_used_for_unknown_heads():
    from transformers import DistilBertConfig, DistilBertModel

    from hildif.influence.split import first_token_block_supported

    model = DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32))
    assert not first_token_block_supported(model, model.transformer.layer[0])


def _reference_grads(clf, examples, names, wd):
    """One backward pass per example through the whole HF model, unpadded: FastIF's way."""
    params = dict(clf.model.named_parameters())
    out = []
    for ex in examples:
        enc = clf.encode([ex], padding=False)
        loss = clf.model(**enc, labels=torch.tensor([ex.label])).loss
        loss = loss + wd * sum((params[n] ** 2).sum() for n in names if not n.endswith("bias") and "LayerNorm" not in n)
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        out.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(out)


@pytest.mark.parametrize("spec", ["fastif", "all"])
def test_padded_batched_gradients_match_unpadded_single_backward(task_clf4, spec):
    clf4, train = task_clf4
    examples = train[:10]
    lengths = clf4.token_lengths(examples)
    assert len(set(lengths)) > 3  # the batch really is padded
    split = SplitModel(clf4, select_parameters(clf4.model, spec))
    obj = Objective(split, 0.005)
    batch = split.collate(split.prefix(examples), [e.label for e in examples])
    ref = _reference_grads(clf4, examples, split.selection.names, 0.005)
    grads = obj.per_example_grads(batch)
    torch.testing.assert_close(grads, ref, atol=2e-6, rtol=1e-4)
    vec = torch.randn(obj.size, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(obj.dots(vec, batch), ref @ vec, atol=1e-5, rtol=1e-4)


def test_engine_gradient_dots_jvp_and_vmap_equal_reference_in_candidate_order(clf4, train):
    cfg = InfluenceConfig(grad_batch_size=7)
    eng = InfluenceEngine(clf4, train, cfg)
    vec = torch.randn(eng.objective.size, generator=torch.Generator().manual_seed(2))
    idx = [17, 3, 40, 5, 22, 9, 31, 0, 58, 12, 44, 27, 8]
    jvp = eng.gradient_dots(vec, idx, "jvp")
    vmap = eng.gradient_dots(vec, idx, "vmap")
    ref = (_reference_grads(clf4, [train[i] for i in idx], eng.selection.names, cfg.weight_decay) @ vec).numpy()
    np.testing.assert_allclose(jvp, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vmap, ref, rtol=1e-4, atol=1e-5)


def test_hvp_matches_explicit_hessian_and_cg_matches_exact(task_clf4):
    clf4, train = task_clf4
    cfg = InfluenceConfig(params=r"layer\.3\.output\.LayerNorm|classifier", hessian_samples=20, cg_tol=1e-10)
    eng = InfluenceEngine(clf4, train, cfg)
    p = eng.objective.size
    assert p < 100 and eng.split.logits(eng.objective.unflatten(eng.objective.theta), eng.batch([0])).shape[1] == \
        clf4.num_labels
    sample = eng.hessian_sample()
    # explicit Hessian by torch.func.hessian on the flat loss over the sample
    batch = eng.batch(sample)
    h = torch.func.hessian(lambda t: eng.objective.loss(t, batch))(eng.objective.theta)
    vec = torch.randn(p, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(eng.hvp(vec, sample), h @ vec, atol=1e-5, rtol=1e-4)
    v = eng.anchor_gradient(train[-1])
    lam = eng.damping_total
    exact = torch.linalg.solve(h.double() + lam * torch.eye(p, dtype=torch.float64), v.double()).float()
    for solver in ("exact", "cg"):
        got = eng.s_test(v, solver).s_test
        assert float((got - exact).norm() / exact.norm()) < 1e-5, solver
    # with little damping the Hessian matters: CG still reaches the exact solution
    lam_small = 1e-2 + 1.1 * max(0.0, -float(torch.linalg.eigvalsh(h.double()).min()))  # keep H + lam I > 0
    small = conjugate_gradient(lambda x: eng.hvp(x, sample) + lam_small * x, v, tol=1e-10, max_iter=500)
    exact_small = torch.linalg.solve(h.double() + lam_small * torch.eye(p, dtype=torch.float64), v.double()).float()
    assert float((small.s_test - exact_small).norm() / exact_small.norm()) < 1e-3


def test_kept_hessian_graph_gives_the_same_products_and_is_reused(clf4, train):
    kept = InfluenceEngine(clf4, train, InfluenceConfig(hessian_samples=24, grad_batch_size=7))
    fresh = InfluenceEngine(clf4, train, InfluenceConfig(hessian_samples=24, grad_batch_size=7,
                                                         keep_hessian_graph=False))
    sample = kept.hessian_sample()
    op = kept.hessian_operator(sample)
    graphs = kept._hessian
    for seed in (4, 5):  # several products through the same kept graphs
        vec = torch.randn(kept.objective.size, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(op(vec), fresh.hvp(vec, sample), atol=1e-6, rtol=1e-5)
    v = kept.anchor_gradient(train[2])
    a, b = kept.s_test(v, "cg"), fresh.s_test(v, "cg")
    assert kept._hessian is graphs  # the second anchor's solve reused the graphs built for the first operator
    assert fresh._hessian is None and a.hvps == b.hvps
    torch.testing.assert_close(a.s_test, b.s_test, atol=1e-7, rtol=1e-5)
    kept.hessian_operator(sample[:10])
    assert kept._hessian[0] == tuple(sample[:10])  # another sample replaces the kept graphs


LISSA_SETTINGS = [
    # FastIF's MNLI defaults (damping 5e-3, scale 1e4, 1,000 batch-1 steps): minutes on a busy CPU
    pytest.param({}, 1000, marks=pytest.mark.integration, id="fastif-defaults"),
    # the same recursion converging in fewer steps ((1 - 0.02)^300 = 0.2%), for the fast suite
    pytest.param({"damping": 0.02, "scale": 1e3, "lissa_steps": 300}, 300, id="fast"),
]


@pytest.mark.parametrize("settings,steps", LISSA_SETTINGS)
def test_lissa_matches_exact_solution_and_top10(clf4, train, settings, steps):
    cfg = InfluenceConfig(cg_tol=1e-10, **settings)
    eng = InfluenceEngine(clf4, train, cfg)
    pool = list(range(0, 60, 3))
    v = eng.anchor_gradient(train[1])
    exact = eng.s_test(v, "cg", sample=pool)
    res = eng.s_test(v, "lissa", sample=pool)
    assert res.hvps == steps and not res.diverged and res.trace[-1]["step"] == steps
    rel = float((res.s_test - exact.s_test).norm() / exact.s_test.norm())
    assert rel < 1e-2
    cand = list(range(60))
    top_l = np.argsort(eng.influence(res.s_test, cand), kind="stable")[:10]
    top_e = np.argsort(eng.influence(exact.s_test, cand), kind="stable")[:10]
    assert list(top_l) == list(top_e)


def test_lissa_warns_and_flags_divergence(clf4, train):
    cfg = InfluenceConfig(scale=1e-2, lissa_steps=100)
    eng = InfluenceEngine(clf4, train, cfg)
    v = eng.anchor_gradient(train[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = eng.s_test(v, "lissa")
    assert res.diverged
    assert any(issubclass(w.category, LissaDivergenceWarning) and "raise influence.scale" in str(w.message)
               for w in caught)


def test_lissa_repetitions_are_averaged(clf4, train):
    eng1 = InfluenceEngine(clf4, train, InfluenceConfig(lissa_steps=20, seed=0))
    eng2 = InfluenceEngine(clf4, train, InfluenceConfig(lissa_steps=20, seed=0, lissa_repetitions=2))
    eng3 = InfluenceEngine(clf4, train, InfluenceConfig(lissa_steps=20, seed=1))
    v = eng1.anchor_gradient(train[0])
    a, b, c = (e.s_test(v, "lissa").s_test for e in (eng1, eng2, eng3))
    torch.testing.assert_close(b, (a + c) / 2)
    assert torch.equal(eng1.s_test(v, "lissa").s_test, a)  # deterministic for a seed
    assert not torch.equal(a, c)


def test_bad_settings_are_named(clf4, train):
    with pytest.raises(ValueError, match="influence.solver"):
        InfluenceEngine(clf4, train, InfluenceConfig(solver="newton"))
    with pytest.raises(ValueError, match="gradient_method"):
        InfluenceEngine(clf4, train, InfluenceConfig(gradient_method="loop"))
    eng = InfluenceEngine(clf4, train, InfluenceConfig(params="all"))
    assert eng.objective.size > 20000
    with pytest.raises(ValueError, match="exceed"):
        eng.s_test(eng.anchor_gradient(train[0]), "exact", sample=[0, 1])  # explicit Hessian refused
