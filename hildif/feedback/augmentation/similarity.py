"""Cosine similarity between original pairs and their augmented copies under the current encoder.

``encoder`` is either a callable ``list[str] -> np.ndarray (n, d)`` (a sentence encoder) or an object with
``.features(examples) -> np.ndarray (n, d)`` such as :class:`hildif.model.classifier.Classifier`; duck typing
keeps this package free of the model package.

* Sentence encoder: premise and hypothesis are encoded separately and the similarity of a copy is the smaller of
  the two cosines (a copy passes only if both sentences stay close).
* ``.features``: the pair is encoded as the model sees it and the similarity is the cosine of the pair features.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from hildif.data.example import Example

Encoder = Callable[[list[str]], np.ndarray]


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"encoder returned shapes {a.shape} and {b.shape}; expected two (n, d) arrays")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)


def copy_similarity(originals: Sequence[Example], copies: Sequence[Example], encoder: Any) -> np.ndarray:
    """Similarity in [-1, 1] of ``copies[i]`` to ``originals[i]``; shape ``(n,)``."""
    if len(originals) != len(copies):
        raise ValueError(f"{len(originals)} originals for {len(copies)} copies")
    if not copies:
        return np.zeros(0)
    features = getattr(encoder, "features", None)
    if callable(features):
        return _cosine_rows(features(list(originals)), features(list(copies)))
    if not callable(encoder):
        raise TypeError(f"encoder must be a callable list[str] -> array or have .features(); got {type(encoder)}")
    n = len(copies)
    texts = [e.premise for e in originals] + [e.premise for e in copies]
    texts += [e.hypothesis or "" for e in originals] + [e.hypothesis or "" for e in copies]  # single texts: ""
    emb = np.asarray(encoder(texts))
    if emb.shape[0] != 4 * n:
        raise ValueError(f"encoder returned {emb.shape[0]} rows for {4 * n} texts")
    premise = _cosine_rows(emb[:n], emb[n : 2 * n])
    hypothesis = _cosine_rows(emb[2 * n : 3 * n], emb[3 * n :])
    return np.minimum(premise, hypothesis)
