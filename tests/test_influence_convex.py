"""Influence against retraining, on a convex problem: a logistic head (params='head') over fixed tiny-BERT features.

The oracle retrains the head with L-BFGS (float64) without one training example (or with it upweighted) and
measures the anchor's loss: no approximation is involved in the oracle. Two tasks: the paper's binary MNLI labels
and MNLI's three-way labels (entailment / neutral / contradiction: a softmax head with 3 classes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hildif.config import InfluenceConfig
from hildif.data.example import Example
from hildif.influence.engine import InfluenceEngine

WD = 0.01


def _fit(x, y, weights, init):
    """argmin_theta sum_i w_i CE(W x_i + b, y_i) + WD ||W||^2 (float64, L-BFGS)."""
    w = init[0].clone().requires_grad_(True)
    b = init[1].clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (weights * F.cross_entropy(x @ w.T + b, y, reduction="none")).sum() + WD * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _anchor_loss(wb, xa, ya):
    return float(F.cross_entropy(xa @ wb[0].T + wb[1], ya))


NLI3 = ("entailment", "neutral", "contradiction")


def three_way(examples):
    """The same MNLI rows with their original three-way gold label as the class."""
    return [Example(e.id, e.premise, e.hypothesis, NLI3.index(e.metadata["gold_label"]), e.metadata)
            for e in examples]


@pytest.fixture(params=[2, 3], ids=["2-class", "3-class"])
def setup(request, mnli_train_sample, hans_sample):
    from hildif.model.tiny import build_tiny_classifier

    classes = request.param
    tiny_clf = build_tiny_classifier(list(mnli_train_sample) + list(hans_sample), seed=0, num_labels=classes,
                                     label_names=NLI3 if classes == 3 else None)
    train = list(mnli_train_sample[:40]) if classes == 2 else three_way(mnli_train_sample[:40])
    assert len({e.label for e in train}) == classes
    n = len(train)
    cfg = InfluenceConfig(params="head", weight_decay=WD, damping=0.0, solver="exact")
    probe = InfluenceEngine(tiny_clf, train, cfg)
    x = torch.stack([it["pooled"] for it in probe.items(range(n))]).double()
    y = torch.tensor([e.label for e in train])
    head = tiny_clf.model.classifier
    init = (head.weight.detach().double(), head.bias.detach().double())
    opt = _fit(x, y, torch.full((n,), 1.0 / n, dtype=torch.float64), init)
    with torch.no_grad():  # put the model at the optimum of the objective the engine differentiates
        head.weight.copy_(opt[0].float())
        head.bias.copy_(opt[1].float())
    engine = InfluenceEngine(tiny_clf, train, cfg)
    anchor = hans_sample[0] if classes == 2 else three_way([mnli_train_sample[100]])[0]
    xa = engine.example_batch([anchor])["pooled"].double()
    ya = torch.tensor([anchor.label])
    s = engine.s_test(engine.anchor_gradient(anchor), sample=list(range(n))).s_test
    scores = engine.influence(s, list(range(n)))
    assert engine.split.logits(engine.objective.unflatten(engine.objective.theta), engine.batch([0])).shape[1] == classes
    return dict(train=train, n=n, x=x, y=y, opt=opt, xa=xa, ya=ya, scores=scores)


def test_predicted_removal_effect_correlates_with_retraining(setup):
    n, x, y, opt = setup["n"], setup["x"], setup["y"], setup["opt"]
    base = _anchor_loss(opt, setup["xa"], setup["ya"])
    actual = []
    for z in range(n):
        w = torch.full((n,), 1.0 / n, dtype=torch.float64)
        w[z] = 0.0
        actual.append(_anchor_loss(_fit(x, y, w, opt), setup["xa"], setup["ya"]) - base)
    predicted = -setup["scores"] / n  # removing z = upweighting it by -1/n: dL(x) ~ -I(z, x) / n
    r = np.corrcoef(predicted, np.array(actual))[0, 1]
    assert r > 0.9, r


def test_upweighting_most_helpful_lowers_anchor_loss_and_most_harmful_raises_it(setup):
    n, x, y, opt, scores = setup["n"], setup["x"], setup["y"], setup["opt"], setup["scores"]
    base = _anchor_loss(opt, setup["xa"], setup["ya"])
    assert scores.min() < 0 < scores.max()
    for z, sign in ((int(np.argmin(scores)), -1), (int(np.argmax(scores)), +1)):
        w = torch.full((n,), 1.0 / n, dtype=torch.float64)
        w[z] += 1.0 / n
        delta = _anchor_loss(_fit(x, y, w, opt), setup["xa"], setup["ya"]) - base
        assert np.sign(delta) == sign, (z, delta, scores[z])
