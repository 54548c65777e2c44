"""explain(): ranking, sign, records, determinism; anchor selection; the `hildif explain` table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hildif.config import InfluenceConfig
from hildif.influence.anchors import AnchorSelectionError, combine, select_anchors
from hildif.influence.engine import InfluenceEngine
from hildif.influence.explain import explain


def test_explain_ranks_most_negative_first_and_is_deterministic(tiny_clf, mnli_train_sample, hans_sample, tmp_path):
    train = list(mnli_train_sample[:120])
    anchors = list(hans_sample[:2])
    cfg = InfluenceConfig(k=30, top_p=5, solver="cg", hessian_samples=16, grad_batch_size=16)
    engine = InfluenceEngine(tiny_clf, train, cfg)
    res = explain(tiny_clf, train, anchors, cfg, cache_dir=tmp_path, progress=False, engine=engine)
    assert len(engine._items) == len(train)  # the index pass kept every example's frozen prefix
    assert [r.anchor.id for r in res] == [a.id for a in anchors]
    for r in res:
        scores = [i.score for i in r.influential]
        assert scores == sorted(scores) and [i.rank for i in r.influential] == [1, 2, 3, 4, 5]
        assert r.details["candidates"] == 30 and r.details["solver"]["solver"] == "cg"
        assert abs(sum(r.probs) - 1) < 1e-5
        json.dumps(r.to_dict())
    # the scores are the engine's influence of those examples
    eng = InfluenceEngine(tiny_clf, train, cfg)
    s = eng.s_test(eng.anchor_gradient(anchors[0])).s_test
    ids = {e.id: i for i, e in enumerate(train)}
    direct = eng.influence(s, [ids[i.example.id] for i in res[0].influential])
    np.testing.assert_allclose(direct, [i.score for i in res[0].influential], rtol=1e-5, atol=1e-9)
    fresh = InfluenceEngine(tiny_clf, train, cfg)
    again = explain(tiny_clf, train, anchors, cfg, cache_dir=tmp_path, progress=False, engine=fresh)
    assert again[0].details["index"]["from_cache"]
    assert len(fresh._items) < len(train)  # a cached index: only the Hessian sample and candidates were computed
    assert [i.to_dict() for i in again[0].influential] == [i.to_dict() for i in res[0].influential]
    harmful = explain(tiny_clf, train, anchors[:1], cfg, cache_dir=tmp_path, harmful=True, progress=False)[0]
    hs = [i.score for i in harmful.influential]
    assert hs == sorted(hs, reverse=True) and hs[0] >= scores[-1]


def test_anchor_selection(hans_sample, tmp_path):
    pool = list(hans_sample)
    ids = [pool[3].id, pool[1].id]
    """``hildif explain``'s options combined (:func:`combine`): ids, then the file's, then the rule's draw."""
    pick = lambda **options: select_anchors(combine(**options), pool)  # noqa: E731
    assert [e.id for e in pick(pair_ids=ids)] == ids
    f = tmp_path / "ids.txt"
    f.write_text(f"# anchors\n{pool[5].id}\n\n{pool[3].id}  # again\n")
    assert [e.id for e in pick(pair_ids=ids, ids_file=f)] == ids + [pool[5].id]
    lo = pick(rule="heuristic:lexical_overlap+label:non-entailment")
    assert lo and all(e.metadata["heuristic"] == "lexical_overlap" and e.label == 0 for e in lo)
    r1 = pick(rule="heuristic:subsequence", random_n=3, seed=4)
    assert len(r1) == 3 and [e.id for e in r1] == [e.id for e in pick(rule="heuristic:subsequence", random_n=3, seed=4)]
    assert all(e.metadata["heuristic"] == "subsequence" for e in r1)
    both = pick(pair_ids=[r1[0].id, pool[0].id], rule="heuristic:subsequence", random_n=3, seed=4)
    assert [e.id for e in both] == [r1[0].id, pool[0].id] + [e.id for e in r1[1:]]  # each once, ids first
    with pytest.raises(AnchorSelectionError, match="not found"):
        pick(pair_ids=["nope"])
    with pytest.raises(AnchorSelectionError, match="unknown anchor rule"):
        pick(rule="genre:fiction")
    with pytest.raises(AnchorSelectionError, match="needs the classifier"):
        pick(rule="misclassified")
    with pytest.raises(AnchorSelectionError, match="no anchor selected"):
        pick(rule="heuristic:none_such")
    with pytest.raises(AnchorSelectionError, match="no anchor selected"):
        combine()
