"""A tiny, randomly initialised BERT classifier built entirely in code: no download, trains in seconds.

Used by the unit tests and for dry runs of the pipeline (``model.name_or_path = "tiny"``).
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import torch

from hildif.data.example import Example
from hildif.model.classifier import Classifier, label_names_for

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD = re.compile(r"\w+|[^\w\s]")


def build_vocab(texts: Iterable[str], max_words: int = 5000) -> list[str]:
    """Special tokens + the most frequent lower-cased words and punctuation of ``texts``."""
    counts = Counter(tok for text in texts for tok in _WORD.findall(text.lower()))
    return SPECIAL_TOKENS + [w for w, _ in counts.most_common(max_words)]


def build_tiny_classifier(
    examples: Iterable[Example] | Iterable[str],
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_length: int = 64,
    seed: int = 0,
    device: str = "cpu",
    attn_implementation: str = "eager",
    num_labels: int = 2,
    label_names: Sequence[str] | None = None,
) -> Classifier:
    """A ``num_labels``-label BERT (``num_layers`` x ``hidden_size``) with a word-level tokenizer built from
    ``examples`` (texts and pairs alike). ``label_names``: the classes' names (default :func:`label_names_for`).

    Deterministic for a seed. Eager attention, so double backward (Hessian-vector products) works.
    """
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    texts: list[str] = []
    for item in examples:
        if isinstance(item, Example):
            texts += list(item.texts)
        else:
            texts.append(str(item))
    vocab = build_vocab(texts)
    names = label_names_for(num_labels, label_names)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        # positional: transformers 4 names it vocab_file, 5 names it vocab (and ignores an unknown vocab_file=,
        # which left a tokenizer of the five special tokens only: every word was [UNK])
        tokenizer = BertTokenizerFast(str(vocab_file), do_lower_case=True)
        if len(tokenizer) != len(vocab):
            raise RuntimeError(f"the tiny tokenizer has {len(tokenizer)} tokens, its vocabulary {len(vocab)}")
        tokenizer.model_max_length = max_length
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max(max_length, 64),
        num_labels=num_labels,
        id2label={i: n for i, n in enumerate(names)},
        label2id={n: i for i, n in enumerate(names)},
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config._attn_implementation = attn_implementation
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    return Classifier(model, tokenizer, max_length=max_length, device=device, version="tiny-untrained")
