"""Which parameters influence functions differentiate, chosen by name patterns.

Three named choices (``InfluenceConfig.params``):

``fastif``  FastIF's choice: the last two encoder layers, the pooler and the classification head (the embeddings and
            the lower layers are frozen). For MiniLM-L6 that is about 3.7 M of 22.7 M parameters.
``head``    the classification head only (``classifier.*`` for BERT): convex in the pooled features for a linear head.
``all``     every parameter.

Anything else is read as a regular expression over parameter names (``re.search``), e.g. ``"layer\\.5\\.|classifier"``.

The patterns rely only on Hugging Face naming conventions shared by BERT, MiniLM, RoBERTa, ELECTRA, DeBERTa and
DistilBERT: the encoder lives under ``model.base_model_prefix`` with numbered blocks (``layer.N.``, ``layers.N.``,
``block.N.``, ``h.N.``), the pooler under ``pooler.`` and the head outside the base model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from hildif.errors import HildifError

LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layer|layers|block|blocks|h)\.(\d+)\.")
# FastIF's weight_decay_ignores: no L2 penalty on biases and LayerNorm weights.
NO_DECAY_PATTERN = re.compile(r"(?:bias$|LayerNorm|layer_norm|layernorm|\.norm\d*\.|_norm\.)")
NAMED_CHOICES = ("fastif", "head", "all")


class ParameterSelectionError(HildifError, ValueError):
    """The parameter choice matches nothing or cannot be interpreted for this model."""


@dataclass(frozen=True)
class ParamSelection:
    """The differentiated parameters of a model.

    Attributes:
        spec: the choice it was built from (``fastif``, ``head``, ``all`` or a regex).
        names: parameter names in ``model.named_parameters()`` order.
        decay: for each name, whether FastIF's L2 weight-decay term covers it (not biases, not LayerNorm).
        first_layer: lowest encoder block index among the selected parameters (None when no block is selected).
        num_layers: number of encoder blocks in the model (None when they cannot be found).
        embeddings: whether any embedding parameter is selected.
        body: whether any selected parameter lies in the base model (encoder, pooler or embeddings).
    """

    spec: str
    names: tuple[str, ...]
    decay: tuple[bool, ...]
    first_layer: int | None
    num_layers: int | None
    embeddings: bool
    body: bool

    def numel(self, model: torch.nn.Module) -> int:
        params = dict(model.named_parameters())
        return sum(params[n].numel() for n in self.names)


def layer_index(name: str) -> int | None:
    """Encoder block number in a parameter name (``bert.encoder.layer.4.output.dense.weight`` -> 4)."""
    m = LAYER_PATTERN.search(name)
    return int(m.group(1)) if m else None


def _base_prefix(model: torch.nn.Module) -> str:
    prefix = getattr(model, "base_model_prefix", "") or ""
    names = [n for n, _ in model.named_parameters()]
    if prefix and any(n.startswith(prefix + ".") for n in names):
        return prefix + "."
    return ""


def select_parameters(model: torch.nn.Module, spec: str = "fastif", last_layers: int = 2) -> ParamSelection:
    """Pick the parameters to differentiate (see the module docstring for ``spec``).

    Raises:
        ParameterSelectionError: when the choice selects no parameter or the model's layout is not recognised.
    """
    named = list(model.named_parameters())
    prefix = _base_prefix(model)
    in_body = [bool(prefix) and n.startswith(prefix) for n, _ in named]
    layers = {layer_index(n) for n, _ in named if layer_index(n) is not None}
    num_layers = max(layers) + 1 if layers else None

    if spec == "all":
        chosen = [n for n, _ in named]
    elif spec == "head":
        if not prefix:
            raise ParameterSelectionError(
                f"params='head': cannot tell the head from the body of {type(model).__name__} "
                f"(no parameters under base_model_prefix {getattr(model, 'base_model_prefix', None)!r})"
            )
        chosen = [n for (n, _), body in zip(named, in_body) if not body]
    elif spec == "fastif":
        if num_layers is None:
            raise ParameterSelectionError(
                f"params='fastif': no numbered encoder blocks (layer.N.) in {type(model).__name__}; "
                "use params='head', 'all' or a regular expression"
            )
        first = max(0, num_layers - last_layers)
        chosen = [
            n for (n, _), body in zip(named, in_body)
            if not body or ".pooler." in f".{n}" or (layer_index(n) is not None and layer_index(n) >= first)
        ]
    else:
        try:
            pattern = re.compile(spec)
        except re.error as exc:
            raise ParameterSelectionError(
                f"params={spec!r} is neither one of {NAMED_CHOICES} nor a valid regular expression: {exc}"
            ) from None
        chosen = [n for n, _ in named if pattern.search(n)]
    if not chosen:
        raise ParameterSelectionError(f"params={spec!r} selects no parameter of {type(model).__name__}")
    chosen_set = set(chosen)
    body_flags = {n: b for (n, _), b in zip(named, in_body)}
    selected_layers = [layer_index(n) for n in chosen if layer_index(n) is not None]
    return ParamSelection(
        spec=spec,
        names=tuple(chosen),
        decay=tuple(not NO_DECAY_PATTERN.search(n) for n in chosen),
        first_layer=min(selected_layers) if selected_layers else None,
        num_layers=num_layers,
        embeddings=any("embed" in n for n in chosen_set),
        body=any(body_flags[n] for n in chosen),
    )


TRAIN_PARAMS = ("all", "influence")


def restrict_training(model: torch.nn.Module, train_params: str, influence_params: str) -> int:
    """FINE_TUNE's ``train_params``: ``all`` leaves ``model`` as it is; ``influence`` turns off the gradients of every
    parameter outside the influence selection ``influence_params`` (so the layers below it stay bit-for-bit the same
    and the next round reuses the pool's frozen prefixes). Returns the number of trainable parameters."""
    if train_params not in TRAIN_PARAMS:
        raise ParameterSelectionError(f"finetune.train_params={train_params!r}: expected one of {TRAIN_PARAMS}")
    if train_params == "influence":
        chosen = set(select_parameters(model, influence_params).names)
        for name, p in model.named_parameters():
            p.requires_grad_(name in chosen)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
