"""Influence on an MPNet encoder (the largest shipped here, benchmarks/gpu_paper.py): the split model's frozen prefix
and tail reproduce the model, which needs MPNet's relative position bias passed to every block.

A tiny MPNet (3 blocks, hidden 32, random weights) over the tiny BERT's word tokenizer; no download."""

from __future__ import annotations

import pytest
import torch

from hildif.data.example import Example

EXAMPLES = [
    Example("a", "The doctor saw the lawyer near the bank.", "The lawyer saw the doctor.", 0),
    Example("b", "A man is walking his dog in the park on a sunny afternoon.", "A man is outside.", 1),
    Example("c", "Nobody knew that the senator resigned.", "The senator resigned.", 1),
    Example("d", "The artists thanked the banker.", "The banker thanked the artists because it rained.", 0),
]


@pytest.fixture()
def tiny_mpnet():
    from transformers import MPNetConfig, MPNetForSequenceClassification

    from hildif.model.classifier import Classifier
    from hildif.model.tiny import build_tiny_classifier

    tokenizer = build_tiny_classifier(EXAMPLES).tokenizer
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # MPNet takes no token type ids
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id,
                         num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = MPNetForSequenceClassification(config)
    with torch.no_grad():  # a position bias far from zero, so that leaving it out shows
        model.mpnet.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)
    return Classifier(model, tokenizer, max_length=48, device="cpu", version="tiny-mpnet")


@pytest.mark.parametrize("spec", ["fastif", "all"])
def test_the_split_model_reproduces_mpnet_logits_and_features(tiny_mpnet, spec):
    from hildif.influence.params import select_parameters
    from hildif.influence.split import SplitModel

    clf = tiny_mpnet
    clf.model.eval()
    with torch.no_grad():
        full = clf.model(**clf.encode(EXAMPLES)).logits
    selection = select_parameters(clf.model, spec)
    split = SplitModel(clf, selection)
    assert split.kind == ("layers" if spec == "fastif" else "tokens")
    items = split.prefix(EXAMPLES, batch_size=3)  # two prefix batches of other padded lengths than the tail's
    params = dict(clf.model.named_parameters())
    with torch.no_grad():
        tail = split.logits({n: params[n] for n in selection.names}, split.collate(items, [e.label for e in EXAMPLES]))
    torch.testing.assert_close(tail, full, atol=1e-5, rtol=1e-5)
    if split.gives_features:
        _, feats = split.prefix_and_features(EXAMPLES, batch_size=3)
        torch.testing.assert_close(torch.from_numpy(feats), torch.from_numpy(clf.features(EXAMPLES)),
                                   atol=1e-5, rtol=1e-5)


def test_influence_ranks_an_mpnet_pool(tiny_mpnet):
    """The engine end to end on MPNet (kNN off: every example a candidate): finite scores, one per example."""
    import numpy as np

    from hildif.config import InfluenceConfig
    from hildif.influence.engine import InfluenceEngine

    engine = InfluenceEngine(tiny_mpnet, EXAMPLES, InfluenceConfig(solver="cg", hessian_samples=4, grad_batch_size=2))
    s_test = engine.s_test(engine.anchor_gradient(EXAMPLES[0])).s_test
    for method in ("jvp", "vmap"):
        scores = engine.influence(s_test, list(range(len(EXAMPLES))), method=method)
        assert scores.shape == (len(EXAMPLES),) and np.isfinite(scores).all()
