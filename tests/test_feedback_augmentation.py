"""Augmentation g(z, s) with the real offline resources: WordNet (Debian) through nlpaug, Apertium back translation.

The WordNet corpus is built into a temporary HILDIF_CACHE_DIR once for this module (the first use is what a fresh
machine does). Loading nlpaug and WordNet takes several seconds, so the augmenter chains are built once per module.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from hildif.config import FeedbackConfig
from hildif.data.example import Example
from hildif.feedback import ResourceMissingError, augment, build_chains, copies_for_score
from hildif.feedback import resources
from hildif.feedback.augmentation.backtranslation import ApertiumBackTranslator, roundtrip_ok

Z = [
    Example("z1", "The doctor near the actors danced .", "The actors danced .", 0, {"heuristic": "subsequence"}),
    Example("z2", "The lawyer knew that the senators supported the judges .", "The senators supported the judges .", 1),
    Example("z3", "The president advised the doctor who visited the museum .", "The doctor advised the president .", 0),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hildif_cache")
    old = os.environ.get("HILDIF_CACHE_DIR")
    os.environ["HILDIF_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("HILDIF_CACHE_DIR")
    else:
        os.environ["HILDIF_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def chains(cache_dir):
    return build_chains(FeedbackConfig())


# ---------------------------------------------------------------- copies per score (no resources needed)


def test_copies_per_score_paper_mapping_threshold_and_table():
    cfg = FeedbackConfig()
    assert [copies_for_score(s, cfg) for s in (1, 2, 3, 4, 5)] == [10, 20, 30, 40, 50]
    assert copies_for_score(3.5, cfg) == 35 and copies_for_score(None, cfg) == 0
    cfg = FeedbackConfig(copies_per_point=4, score_threshold=3)
    assert [copies_for_score(s, cfg) for s in (1, 2, 2.5, 3, 5)] == [0, 0, 0, 12, 20]
    cfg = FeedbackConfig(copies_table=[0, 0, 5, 20, 40])
    assert [copies_for_score(s, cfg) for s in (1, 3, 4, 4.5, 5)] == [0, 5, 20, 30, 40]
    with pytest.raises(ValueError, match="outside 1..5"):
        copies_for_score(7, FeedbackConfig())
    with pytest.raises(ValueError, match="copies_table needs 5"):
        copies_for_score(2, FeedbackConfig(copies_table=[1, 2]))


# ---------------------------------------------------------------- resources


def test_wordnet_corpus_is_built_once_atomically_and_loads(cache_dir):
    data_dir = resources.ensure_wordnet()
    folder = data_dir / "corpora" / "wordnet"
    assert data_dir == cache_dir / "nltk_data"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        list(resources.WORDNET_FILES) + ["lexnames", "hildif_wordnet.json"]
    )
    stamp = (folder / "lexnames").stat().st_mtime_ns
    resources.ensure_wordnet()  # idempotent: nothing rewritten
    assert (folder / "lexnames").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left
    wn = resources.load_wordnet()
    assert {s.name() for s in wn.synsets("physician")} >= {"doctor.n.01"}
    # the generated lexnames agree with the part of speech of the synsets that use them
    for word, pos, lexname in [("dog", "n", "noun.animal"), ("run", "v", "verb.motion"), ("quickly", "r", "adv.all"),
                               ("judge", "v", "verb.cognition"), ("green", "a", "adj.all")]:
        assert lexname in {s.lexname() for s in wn.synsets(word, pos)}


def test_missing_wordnet_names_the_debian_packages(tmp_path):
    with pytest.raises(ResourceMissingError, match="wordnet-base wordnet-sense-index"):
        resources.ensure_wordnet(tmp_path / "nltk", source=tmp_path / "empty")


def test_partial_build_is_redone(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(resources.WORDNET_SRC_DEFAULT, src)
    out = resources.ensure_wordnet(tmp_path / "nltk", source=src)
    marker = out / "corpora" / "wordnet" / "hildif_wordnet.json"
    with open(src / "adv.exc", "a") as f:
        f.write("bestest best\n")  # the source changed: the corpus is rebuilt
    resources.ensure_wordnet(tmp_path / "nltk", source=src)
    assert json.loads(marker.read_text())["files"]["adv.exc"] == (src / "adv.exc").stat().st_size
    assert (out / "corpora" / "wordnet" / "adv.exc").read_text().endswith("bestest best\n")


def test_missing_apertium_pair_names_the_package():
    with pytest.raises(ResourceMissingError, match="apertium-eng-xxx"):
        ApertiumBackTranslator(pair="eng-xxx")


def test_pos_tagger_needs_no_download():
    tagged = resources.pos_tag(["The", "doctors", "advised", "the", "Yemenite-Quarter", "."])
    assert [t for t, _ in tagged] == ["The", "doctors", "advised", "the", "Yemenite-Quarter", "."]
    tags = [tag for _, tag in tagged]
    assert tags[:2] == ["DT", "NNS"] and tags[2] in ("VBD", "VBN") and tags[3:] == ["DT", "NNP", "."]
    assert resources.pos_tag([]) == []


# ---------------------------------------------------------------- back translation


def test_apertium_round_trip_changes_text_and_filters_bad_output():
    bt = ApertiumBackTranslator()
    texts = ["The military has helped them be more mature.", "I sat down in the cockpit and waited."]
    out = bt.translate(texts)
    assert out[0] == "The army has helped them be more mature."
    assert out[1] is not None and out[1] != texts[1]
    # Apertium's known failure from the offline-resources notes is rejected
    assert not roundtrip_ok("The senator near the artists supported the banker.",
                            "The senator approaches the artists leaned the banker.")
    assert not roundtrip_ok("He is going to kill everyone except us.", "It goes to kill all the world except us.")
    assert not roundtrip_ok("Dave knew that they had enough experience.", "Dave Knew that  had quite experience.")


# ---------------------------------------------------------------- g(z, s)


def test_copies_per_score_labels_kept_and_text_changed(chains):
    cfg = FeedbackConfig(copies_per_point=2)
    res = augment([(Z[0], 3), (Z[1], 1), (Z[2], 2)], cfg, chains=chains)
    by_source = {z.id: [e for e in res.examples if e.metadata.get("augmented_from") == z.id] for z in Z}
    assert [len(by_source[z.id]) for z in Z] == [6, 2, 4]
    assert res.stats["requested"] == res.stats["produced"] == 12 and res.stats["originals"] == 3
    assert [e.id for e in res.examples[:7]] == ["z1"] + [f"z1~aug{k}" for k in range(6)]
    for z in Z:
        keys = {(e.premise, e.hypothesis) for e in by_source[z.id]}
        assert len(keys) == len(by_source[z.id])  # no duplicates
        assert (z.premise, z.hypothesis) not in keys  # none identical to the original
        assert all(e.label == z.label for e in by_source[z.id])
    assert by_source["z1"][0].metadata["heuristic"] == "subsequence"  # source metadata carried
    assert {e.metadata["augmenter"] for e in res.examples if "augmenter" in e.metadata} == {
        "synonym", "backtranslation"
    }
    assert res.stats["per_score"]["3"] == {"items": 1, "requested": 6, "produced": 6, "missing": 0}


def test_synonyms_are_consistent_between_premise_and_hypothesis(chains):
    cfg = FeedbackConfig(copies_per_point=8, augmenters=["synonym"])
    res = augment([(Z[0], 1)], cfg, chains=[c for c in chains if c[0] == "synonym"], include_originals=False)
    assert len(res.examples) == 8
    for e in res.examples:  # the hypothesis stays a contiguous run of the premise: the heuristic survives
        assert " ".join(e.hypothesis.lower().split()[:-1]) in e.premise.lower()


def test_reproducible_with_seed_and_different_with_another(chains):
    cfg = FeedbackConfig(copies_per_point=3, augmenters=["synonym"])
    syn = [c for c in chains if c[0] == "synonym"]
    run = lambda c: [(e.premise, e.hypothesis) for e in augment([(Z[2], 2)], c, chains=syn).examples]
    assert run(cfg) == run(cfg)
    assert run(cfg) != run(replace(cfg, seed=1))


def test_zero_copies_below_threshold_and_pending(chains):
    cfg = FeedbackConfig(score_threshold=3)
    res = augment([(Z[0], 2), (Z[1], None)], cfg, chains=chains)
    assert res.examples == [] and res.stats["requested"] == 0


def test_composed_chain_and_deterministic_chain_tried_once(chains):
    cfg = FeedbackConfig(copies_per_point=3, augmenters=["backtranslation", "backtranslation>synonym"])
    methods = {name: steps for name, steps in chains}
    composed = [("backtranslation", methods["backtranslation"]),
                ("backtranslation>synonym", methods["backtranslation"] + methods["synonym"])]
    res = augment([(Z[1], 1)], cfg, chains=composed, include_originals=False)
    kinds = [e.metadata["augmenter"] for e in res.examples]
    assert kinds.count("backtranslation") <= 1 and "backtranslation>synonym" in kinds


def test_similarity_filter_with_a_string_encoder(chains):
    vocab: dict[str, int] = {}

    def bag_of_words(texts):  # a real (if simple) encoder: word counts
        rows = []
        for t in texts:
            v = np.zeros(512)
            for w in t.lower().split():
                v[vocab.setdefault(w, len(vocab)) % 512] += 1
            rows.append(v)
        return np.stack(rows)

    syn = [c for c in chains if c[0] == "synonym"]
    loose = augment([(Z[2], 1)], FeedbackConfig(copies_per_point=6, augmenters=["synonym"]), chains=syn)
    strict_cfg = FeedbackConfig(copies_per_point=6, augmenters=["synonym"], similarity_filter=0.85)
    strict = augment([(Z[2], 1)], strict_cfg, encoder=bag_of_words, chains=syn)
    assert strict.stats["dropped"]["dissimilar"] > 0
    assert all(e.metadata["similarity"] >= 0.85 for e in strict.examples if "similarity" in e.metadata)
    assert loose.stats["dropped"]["dissimilar"] == 0
    with pytest.raises(ValueError, match="no encoder"):
        augment([(Z[2], 1)], strict_cfg, chains=syn)


def test_similarity_filter_with_a_classifier(chains, tiny_clf):
    syn = [c for c in chains if c[0] == "synonym"]
    cfg = FeedbackConfig(copies_per_point=2, augmenters=["synonym"], similarity_filter=-1.0)
    res = augment([(Z[0], 1)], cfg, encoder=tiny_clf, chains=syn)
    sims = [e.metadata["similarity"] for e in res.examples if "similarity" in e.metadata]
    assert len(sims) == 2 and all(-1.0 <= s <= 1.0 + 1e-6 for s in sims)


def test_unknown_method_is_rejected(cache_dir):
    with pytest.raises(ValueError, match="unknown method 'eda'"):
        build_chains(FeedbackConfig(augmenters=["synonym>eda"]))


# ---------------------------------------------------------------- filling with EDA operations

# names are never replaced by synonyms and "met" is the only word with WordNet synonyms (15 distinct single words):
# 20 copies cannot come from synonyms alone
FEW_SYNONYMS = Example("f1", "Yesterday John , Mary , Bill and Sue met Tom in Paris near Rome .", "John met Tom .", 1)


@pytest.fixture(scope="module")
def fill_chains(cache_dir):
    from hildif.feedback import build_fill_chains

    return build_fill_chains(FeedbackConfig(fill_augmenters=["swap", "delete", "insert"]))


def test_without_filling_the_shortfall_is_reported_per_score_and_example(chains):
    syn = [c for c in chains if c[0] == "synonym"]
    cfg = FeedbackConfig(copies_per_point=4, augmenters=["synonym"], fill_augmenters=[])
    res = augment([(FEW_SYNONYMS, 5.0), (Z[1], 1.0)], cfg, chains=syn)
    st = res.stats
    assert st["requested"] == 24 and st["produced"] < 24
    missing = 20 - sum(1 for e in res.examples if e.metadata.get("augmented_from") == "f1")
    assert missing > 0 and st["shortfall"] == [{"id": "f1", "occurrence": 0, "missing": missing}]
    assert st["per_score"]["5.0"] == {"items": 1, "requested": 20, "produced": 20 - missing, "missing": missing}
    assert st["per_score"]["1.0"]["missing"] == 0
    assert st["fill"] == {"augmenters": [], "produced": 0} and set(st["by_augmenter"]) == {"synonym"}


def test_filling_reaches_the_requested_count_label_safely(chains, fill_chains):
    syn = [c for c in chains if c[0] == "synonym"]
    fill = [c for c in fill_chains if c[0] in ("swap", "delete")]
    cfg = FeedbackConfig(copies_per_point=4, augmenters=["synonym"], fill_augmenters=["swap", "delete"])
    res = augment([(FEW_SYNONYMS, 5.0)], cfg, chains=syn, fill_chains=fill)
    st = res.stats
    copies = [e for e in res.examples if e.metadata.get("augmented_from") == "f1"]
    assert st["requested"] == st["produced"] == len(copies) == 20 and st["shortfall"] == []
    assert st["per_score"]["5.0"]["missing"] == 0
    filled = [e for e in copies if e.metadata.get("phase") == "fill"]
    assert filled and st["fill"]["produced"] == len(filled) == st["by_augmenter"].get("swap", 0) + st["by_augmenter"].get("delete", 0)
    assert st["by_augmenter"]["synonym"] == 20 - len(filled)
    assert len({(e.premise, e.hypothesis) for e in copies}) == 20  # distinct
    for e in filled:  # premise only; the hypothesis and the words it shares with the premise stay, in order
        assert e.hypothesis == FEW_SYNONYMS.hypothesis and e.label == FEW_SYNONYMS.label
        words = e.premise.split()
        assert [w for w in words if w in ("John", "met", "Tom")] == ["John", "met", "Tom"]
    again = augment([(FEW_SYNONYMS, 5.0)], cfg, chains=syn, fill_chains=fill)
    assert [(e.premise, e.metadata.get("augmenter")) for e in again.examples] == \
        [(e.premise, e.metadata.get("augmenter")) for e in res.examples]  # deterministic


def test_eda_operations_never_touch_negations_or_the_hypothesis_words(fill_chains):
    premise = "The tall doctor did not see the old actor near the big museum in a quiet town , and nobody danced there ."
    hypothesis = "The doctor saw the actor ."
    kept = ["doctor", "not", "actor", "nobody"]  # in premise order
    for name, (op,) in fill_chains:
        outs = {op.augment_pair(premise, hypothesis, seed)[0] for seed in range(30)}
        assert len(outs - {premise}) >= 3, name
        for out in outs:
            words = out.lower().replace(",", " ").split()
            assert [w for w in words if w in kept] == kept, (name, out)
            assert op.augment_pair(premise, hypothesis, 3) == op.augment_pair(premise, hypothesis, 3)
    with pytest.raises(ValueError, match="unknown method 'shuffle'"):
        build_chains(FeedbackConfig(), ["shuffle"], "feedback.fill_augmenters")
