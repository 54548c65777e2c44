"""The sources of a round's construction pairs (hildif.influence.neighbourhood): the confirmed examples' nearest
training rows, checked against brute-force distances on the tiny model's features, and the random control of the
same volume; then the pairs in a fine-tuning set (hildif.rounds.finetune.build_finetuning_set)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hildif.config import ConfigError, load_config
from hildif.influence.knn import FeatureIndex
from hildif.influence.neighbourhood import confirmed, construction_sources, neighbourhood, random_rows
from hildif.rounds.finetune import build_finetuning_set


# the round's default set adds construction pairs and rehearsal; these tests build sets one part at a time
PLAIN = ("feedback.constructions=", "finetune.rehearsal_ratio=0")

@pytest.fixture()
def setting(tiny_clf, mnli_train_sample):
    pool = list(mnli_train_sample[:300])
    index = FeatureIndex.build_or_load(tiny_clf, pool, "flat")
    scored = [(pool[3], 5.0), (pool[40], 4.0), (pool[77], 2.0), (pool[3], 5.0), (pool[120], None)]
    return pool, index, scored


def test_confirmed_keeps_scores_at_or_above_the_threshold_once(setting):
    pool, _, scored = setting
    assert [e.id for e in confirmed(scored, 4)] == [pool[3].id, pool[40].id]
    assert [e.id for e in confirmed(scored, 2)] == [pool[3].id, pool[40].id, pool[77].id]


def test_neighbourhood_is_the_brute_force_nearest_rows_per_score_point(tiny_clf, setting):
    pool, index, scored = setting
    got = neighbourhood(tiny_clf, index, pool, scored, per_point=3, min_score=4)
    feats = tiny_clf.features(pool).astype(np.float64)
    want: set[int] = set()
    for i, s in ((3, 5), (40, 4)):  # 3 x score nearest rows + the example itself
        d2 = ((feats - feats[i]) ** 2).sum(1)
        want.update(np.argsort(d2, kind="stable")[: 3 * s + 1].tolist())
    rated = {pool[i].id for i in (3, 40, 77, 120)}
    want_ids = {pool[i].id for i in want} - rated
    got_ids = [e.id for e in got]
    assert len(got_ids) == len(set(got_ids))
    # ties in distance may swap a row at the edge; everything else is exact
    assert len(set(got_ids) ^ want_ids) <= 2, (sorted(got_ids), sorted(want_ids))
    assert not set(got_ids) & rated
    assert [pool.index(e) for e in got] == sorted(pool.index(e) for e in got)  # pool order
    assert neighbourhood(tiny_clf, index, pool, scored, per_point=0, min_score=4) == []
    with pytest.raises(ValueError, match="index holds 300 rows but the pool has 299"):
        neighbourhood(tiny_clf, index, pool[:-1], scored, per_point=3, min_score=4)


def test_sources_per_mode_and_the_random_control_has_the_same_volume(tiny_clf, setting):
    pool, index, scored = setting
    kw = dict(per_point=3, min_score=4, seed=0, classifier=tiny_clf, index=index)
    near = construction_sources("neighbourhood", scored, pool, **kw)
    rated = construction_sources("rated", scored, pool, **kw)
    rand = construction_sources("random", scored, pool, **kw)
    assert [e.id for e in rated] == [pool[3].id, pool[40].id] == [e.id for e in near[:2]]
    assert len(rand) == len(near) > len(rated)
    rated_ids = {z.id for z, _ in scored}
    assert not {e.id for e in rand} & rated_ids
    assert rand == construction_sources("random", scored, pool, **kw)  # seeded
    assert rand != construction_sources("random", scored, pool, **{**kw, "seed": 1})
    assert len(random_rows(pool, 10_000, scored, 0)) == len(pool) - len(rated_ids)
    with pytest.raises(ConfigError, match="feedback.construction_sources='nearest'"):
        construction_sources("nearest", scored, pool, **kw)
    with pytest.raises(ValueError, match="need the base model"):
        construction_sources("neighbourhood", scored, pool, per_point=3, min_score=4, seed=0)


def test_construction_pairs_join_the_set_before_rehearsal_and_are_capped(mnli_train_sample):
    pool = list(mnli_train_sample)
    scored = [(pool[i], 5.0) for i in range(40)] + [(pool[40], 1.0)]
    cfg = load_config(overrides=[*PLAIN, "feedback.copies_per_point=1", "feedback.constructions=order,passive,embedding",
                                 "finetune.rehearsal_ratio=0.5"])
    sources = pool[100:400]
    fts = build_finetuning_set(scored, cfg, train_pool=pool, augmentation=False, no_augmentation="once",
                               construction_sources=sources)
    kinds = ["cx" if "construction" in e.metadata else "rehearsal" if e.metadata.get("rehearsal") else "rated"
             for e in fts.examples]
    n_cx = kinds.count("cx")
    assert n_cx > 20 and fts.stats["parts"]["constructions"] == n_cx
    assert kinds == ["rated"] * 41 + ["cx"] * n_cx + ["rehearsal"] * round(0.5 * (41 + n_cx))
    cx = [e for e in fts.examples if "construction" in e.metadata]
    assert {e.metadata["transformed_from"] for e in cx} <= {e.id for e in sources}
    per = Counter((e.metadata["construction"], e.label) for e in cx)
    assert all(per[(c, 0)] == per[(c, 1)] for c, _ in per)
    assert fts.stats["constructions"]["sources"] == len(sources)
    # the set's file names each member and the row it came from; its counts are the set's parts
    from hildif.rounds.setfile import kind_counts, set_rows

    rows = set_rows(fts.examples, [("a", z.id, s) for z, s in scored])
    assert {k: v for k, v in kind_counts(rows).items() if v} == {k: v for k, v in fts.stats["parts"].items() if v}
    cx_rows = [r for r in rows if r.kind == "construction"]
    assert len(cx_rows) == n_cx and all(r.augmenter.startswith("construction:") for r in cx_rows)
    assert {r.source_id for r in cx_rows} <= {e.id for e in sources}
    capped = build_finetuning_set(scored, load_config(overrides=[*PLAIN,
        "feedback.copies_per_point=1", "feedback.constructions=order,passive,embedding", "feedback.construction_pairs=5"]),
        augmentation=False, no_augmentation="once", construction_sources=sources)
    cxc = [e for e in capped.examples if "construction" in e.metadata]
    assert len(cxc) == 10 and Counter(e.label for e in cxc) == {0: 5, 1: 5}
    # without sources: the rated examples scored >= feedback.construction_min_score (4) only
    own = build_finetuning_set(scored, load_config(overrides=[*PLAIN, "feedback.copies_per_point=1",
                                                              "feedback.constructions=order,embedding"]),
                               augmentation=False, no_augmentation="once")
    assert {e.metadata["transformed_from"] for e in own.examples if "construction" in e.metadata} <= {
        pool[i].id for i in range(40)}
    assert own.stats["constructions"]["sources"] == 40
