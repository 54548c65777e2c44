"""Split a classifier into a frozen prefix (computed once, without gradients) and a differentiable tail.

Influence functions only differentiate the selected parameters (:mod:`hildif.influence.params`). Everything below the
lowest selected encoder block is constant, so its output is computed once per example and cached; gradients,
Hessian-vector products and candidate scores then run the tail only. Three kinds of split:

``layers``  prefix = embeddings + encoder blocks ``0 .. first_layer-1``; an item is the hidden state entering block
            ``first_layer``, shape (T, hidden) without padding. Tail = the remaining blocks, pooler and head.
``head``    prefix = the whole encoder + pooler; an item is the pooled feature, shape (hidden,). Tail = the head.
``tokens``  no split because embeddings are selected: an item is the token ids; the tail runs embeddings, blocks and
            head with the same explicit masking as ``layers``.
``full``    a layout this module does not know: an item is the token ids and the tail is the model's own forward
            (``Objective.dots`` works; ``per_example_grads`` may not, as the model's mask code is not vmap-safe).

Within a tail batch items are padded to the longest and masked, which gives the same logits and gradients as
unpadded examples (the padding positions receive zero attention weight).

Blocks get what their encoder gives them besides the hidden state and the mask (:func:`block_inputs`): MPNet's
relative position bias, which its encoder computes once from the block input's length and passes to every block.

The heads of BERT-style classifiers read the first ([CLS]) token of the last block only, so the tail computes that
block for the first token alone (its keys and values still come from every token): the same logits and gradients,
and for a two-block tail about 40% less arithmetic. Layouts it cannot verify run the whole block.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from hildif.data.example import Example
from hildif.influence.params import ParamSelection
from hildif.model.classifier import Classifier, length_sorted_batches

Item = dict[str, torch.Tensor]
Batch = dict[str, torch.Tensor]


@contextlib.contextmanager
def eager_attention(model: nn.Module) -> Iterator[None]:
    """Switch a Hugging Face model to eager attention (SDPA kernels have no double backward), restoring it after."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    if config is None or before in (None, "eager"):
        yield
        return
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:  # pragma: no cover - older transformers
        config._attn_implementation = "eager"
    try:
        yield
    finally:
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(before)
        else:  # pragma: no cover
            config._attn_implementation = before


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 1/0 attention mask -> (B, 1, 1, T) additive mask (0 where attended, dtype min where padded)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _layer_out(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def block_inputs(encoder: nn.Module, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
    """What ``encoder`` passes each of its blocks besides the hidden state and the mask, for (B, T, H) block inputs:
    MPNet's relative position bias (``MPNetEncoder.compute_position_bias``, from the length alone, so the same for a
    padded or an unpadded example's real tokens); nothing for BERT-layout encoders. Without it an MPNet block runs
    without its position bias: other logits than the model's."""
    compute = getattr(encoder, "compute_position_bias", None)
    return {"position_bias": compute(hidden)} if callable(compute) else {}


# model types whose classification head reads the first token of the last hidden state and nothing else
FIRST_TOKEN_HEADS = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra"})


def first_token_block_supported(model: nn.Module, layer: nn.Module) -> bool:
    """Whether :func:`first_token_block` reproduces ``layer`` for ``model`` (a BERT-layout encoder block whose
    output the head reads at the first token only)."""
    config = getattr(model, "config", None)
    att = getattr(getattr(layer, "attention", None), "self", None)
    return (
        getattr(config, "model_type", None) in FIRST_TOKEN_HEADS
        and not getattr(config, "is_decoder", False)
        and all(hasattr(att, a) for a in ("query", "key", "value", "num_attention_heads", "attention_head_size"))
        and hasattr(layer.attention, "output")
        and hasattr(layer, "feed_forward_chunk")
    )


def first_token_block(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A BERT encoder block evaluated for the first token only.

    Args:
        hidden: (B, T, H) block input; mask: (B, 1, 1, T) additive attention mask.
    Returns:
        (B, 1, H): equal to ``layer(hidden, mask)[:, :1]``; the first token attends to every token as usual.
    """
    att = layer.attention.self
    b, t, _ = hidden.shape
    heads, size = att.num_attention_heads, att.attention_head_size
    scaling = getattr(att, "scaling", size ** -0.5)
    query = att.query(hidden[:, :1]).view(b, 1, heads, size).transpose(1, 2)
    key = att.key(hidden).view(b, t, heads, size).transpose(1, 2)
    value = att.value(hidden).view(b, t, heads, size).transpose(1, 2)
    weights = torch.softmax(query @ key.transpose(2, 3) * scaling + mask, dim=-1)
    context = (weights @ value).transpose(1, 2).reshape(b, 1, heads * size)
    return layer.feed_forward_chunk(layer.attention.output(context, hidden[:, :1]))


class _Tail(nn.Module):
    """The differentiable part, as a module so that ``torch.func.functional_call`` can swap its parameters."""

    def __init__(self, split: "SplitModel") -> None:
        super().__init__()
        self.model = split.model
        self.kind = split.kind
        self.first_layer = split.first_layer
        layers = getattr(getattr(self.model.base_model, "encoder", None), "layer", None) or []
        self.first_token_last = (
            self.kind in ("layers", "tokens") and len(layers) > (self.first_layer or 0)
            and first_token_block_supported(self.model, layers[-1])
        )

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        base = self.model.base_model
        pooler = getattr(base, "pooler", None)
        if pooler is not None:
            return self.model.classifier(pooler(hidden))  # dropout is the identity in eval mode
        return self.model.classifier(hidden)  # RoBERTa/ELECTRA-style heads read the [CLS] state themselves

    def blocks(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Blocks ``first_layer ..`` on (B, T, H) inputs with a (B, 1, 1, T) additive mask; the last block for the
        first token only where the head reads nothing else (then the result is (B, 1, H))."""
        encoder = self.model.base_model.encoder
        blocks = list(encoder.layer[self.first_layer :])
        last = blocks.pop() if blocks and self.first_token_last else None
        extra = block_inputs(encoder, hidden)
        for layer in blocks:
            hidden = _layer_out(layer(hidden, mask, **extra))
        return first_token_block(last, hidden, mask) if last is not None else hidden

    def features(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The kNN features (:meth:`Classifier.features`: pooler output, else the [CLS] state) from block inputs."""
        hidden = self.blocks(hidden, mask)
        pooler = getattr(self.model.base_model, "pooler", None)
        return pooler(hidden) if pooler is not None else hidden[:, 0]

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.kind == "head":
            return self.model.classifier(batch["pooled"])
        if self.kind in ("layers", "tokens"):
            hidden = batch["hidden"] if self.kind == "layers" else self.model.base_model.embeddings(
                **{k: batch[k] for k in ("input_ids", "token_type_ids") if k in batch}
            )
            return self.head(self.blocks(hidden, additive_mask(batch["attention_mask"], hidden.dtype)))
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.model(**inputs).logits


class SplitModel:
    """A classifier cut at the lowest differentiated layer.

    Attributes:
        kind: ``layers``, ``head`` or ``full`` (module docstring).
        first_layer: the first block of the tail (``layers`` kind), else None.
    """

    def __init__(self, classifier: Classifier, selection: ParamSelection) -> None:
        self.classifier = classifier
        self.model = classifier.model
        self.selection = selection
        self.kind, self.first_layer = self._choose_kind()
        self.tail = _Tail(self)

    def _choose_kind(self) -> tuple[str, int | None]:
        model, sel = self.model, self.selection
        base = getattr(model, "base_model", None)
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        has_layout = (
            base is not None and base is not model and hasattr(base, "embeddings")
            and isinstance(layers, nn.ModuleList) and isinstance(getattr(model, "classifier", None), nn.Module)
        )
        if not has_layout:
            return "full", None
        if sel.embeddings:
            return "tokens", 0
        pooler = getattr(base, "pooler", None)
        if not sel.body and pooler is not None and isinstance(model.classifier, nn.Linear):
            return "head", None
        if sel.first_layer is None:
            # body parameters selected outside numbered blocks (e.g. pooler only): the pooler needs the last block
            return ("layers", len(layers)) if pooler is not None else ("full", None)
        return "layers", sel.first_layer

    # ------------------------------------------------------------------ prefix (no gradients)
    @property
    def gives_features(self) -> bool:
        """Whether :meth:`prefix_and_features` works: the ``layers`` and ``head`` splits."""
        return self.kind in ("layers", "head")

    def item_floats(self, num_tokens: int) -> int:
        """Floats one example's tail input holds (for memory budgets)."""
        hidden = int(getattr(self.model.config, "hidden_size", 0) or 0)
        return hidden if self.kind == "head" else num_tokens * hidden

    @torch.no_grad()
    def _prefix_batch(self, enc: dict[str, torch.Tensor], with_features: bool) -> tuple[list[Item], torch.Tensor | None]:
        mask = enc["attention_mask"]
        keep = mask.bool()
        if self.kind == "head":
            pooled = self.classifier._pooled(enc)
            return [{"pooled": pooled[i]} for i in range(pooled.shape[0])], pooled
        if self.kind in ("full", "tokens"):
            items = [{k: v[i][keep[i]] for k, v in enc.items() if k != "attention_mask"} for i in range(mask.shape[0])]
            return items, None
        base = self.model.base_model
        emb_kwargs = {k: enc[k] for k in ("input_ids", "token_type_ids") if k in enc}
        hidden = base.embeddings(**emb_kwargs)
        add = additive_mask(mask, hidden.dtype)
        extra = block_inputs(base.encoder, hidden)
        for layer in base.encoder.layer[: self.first_layer]:
            hidden = _layer_out(layer(hidden, add, **extra))
        items = [{"hidden": hidden[i][keep[i]]} for i in range(hidden.shape[0])]
        return items, (self.tail.features(hidden, add) if with_features else None)

    def _run(
        self, examples: Sequence[Example], batch_size: int, progress: bool, with_features: bool,
        lengths: Sequence[int] | None = None,
    ):
        out: list[Item | None] = [None] * len(examples)
        feats: list[np.ndarray | None] = [None] * len(examples)
        lengths = self.classifier.token_lengths(examples) if lengths is None else lengths
        batches = list(length_sorted_batches(lengths, batch_size))
        desc = "frozen prefix + kNN features" if with_features else "frozen prefix"
        with eager_attention(self.model):
            for idx in tqdm(batches, desc=desc, disable=not progress, unit="batch", leave=False):
                items, pooled = self._prefix_batch(self.classifier.encode([examples[i] for i in idx]), with_features)
                values = pooled.float().cpu().numpy() if with_features else None
                for row, (i, item) in enumerate(zip(idx, items)):
                    out[i] = item
                    if values is not None:
                        feats[i] = values[row]
        return out, feats

    def prefix(self, examples: Sequence[Example], batch_size: int = 32, progress: bool = False) -> list[Item]:
        """Tail inputs for ``examples`` (same order), computed in length-sorted batches without gradients."""
        if not examples:
            return []
        return self._run(examples, batch_size, progress, False)[0]  # type: ignore[return-value]

    def prefix_and_features(
        self, examples: Sequence[Example], batch_size: int = 32, progress: bool = False,
        lengths: Sequence[int] | None = None,
    ) -> tuple[list[Item], np.ndarray]:
        """:meth:`prefix` and the kNN features of the same examples (as :meth:`Classifier.features`, (n, hidden)
        float32) from one pass: the blocks above the split run without gradients on the prefix just computed.
        ``lengths``: the examples' token lengths when the caller has them (:meth:`Classifier.token_lengths`)."""
        if not self.gives_features:
            raise ValueError(f"a {self.kind!r} split cannot give kNN features (only 'layers' and 'head' splits)")
        if not examples:
            return [], np.zeros((0, 0), dtype=np.float32)
        items, feats = self._run(examples, batch_size, progress, True, lengths)
        return items, np.stack(feats).astype(np.float32)  # type: ignore[return-value, arg-type]

    @torch.no_grad()
    def features_of_items(self, items: Sequence[Item]) -> np.ndarray:
        """The kNN features ((B, hidden) float32, as :meth:`prefix_and_features`) of prefixes already computed (e.g.
        read from :mod:`hildif.influence.prefix_cache`): only the blocks above the split run. One batch: the caller
        groups items of similar length."""
        if not self.gives_features:
            raise ValueError(f"a {self.kind!r} split cannot give kNN features (only 'layers' and 'head' splits)")
        if self.kind == "head":
            return torch.stack([it["pooled"] for it in items]).float().cpu().numpy()
        batch = self.collate(items, [0] * len(items))
        hidden = batch["hidden"]
        return self.tail.features(hidden, additive_mask(batch["attention_mask"], hidden.dtype)).float().cpu().numpy()

    # ------------------------------------------------------------------ tail batches
    def collate(self, items: Sequence[Item], labels: Sequence[int]) -> Batch:
        """Pad items to the longest (with an attention mask) and stack; ``labels`` go in ``batch["labels"]``."""
        device = self.classifier.device
        batch: Batch = {"labels": torch.as_tensor(list(labels), dtype=torch.long, device=device)}
        if self.kind == "head":
            batch["pooled"] = torch.stack([it["pooled"] for it in items]).to(device)
            return batch
        lengths = [next(iter(it.values())).shape[0] for it in items]
        longest = max(lengths)
        mask = torch.zeros(len(items), longest, dtype=torch.long, device=device)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        batch["attention_mask"] = mask
        pad_id = getattr(self.classifier.tokenizer, "pad_token_id", 0) or 0
        for key in items[0]:
            first = items[0][key]
            padded = first.new_full((len(items), longest, *first.shape[1:]), pad_id if key == "input_ids" else 0)
            for i, it in enumerate(items):
                padded[i, : lengths[i]] = it[key]
            batch[key] = padded.to(device)
        return batch

    def logits(self, params: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """Tail logits (B, num_labels) with the selected parameters replaced by ``params`` (model names as keys)."""
        return torch.func.functional_call(self.tail, {f"model.{k}": v for k, v in params.items()}, (batch,))
