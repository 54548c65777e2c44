"""What a front end (the Label Studio ML backend, :mod:`ml_backend`) needs from hildif, in one small facade.

:class:`Service` answers for one run directory: the served model version and the versions saved
(:class:`hildif.model.registry.ModelRegistry`, the one record of model versions), the similarity of two NLI pairs
under the served model (loaded once per version, reloaded only when a sync switched it), the round a Label Studio
project belongs to, the two round jobs: start a round and sync it (:mod:`hildif.rounds`), and interactive influence:
the most influential training examples of any text (pair) through the served version's gradient store
(:class:`hildif.influence.explain.StoreExplainer`, opened once per version by :meth:`Service.open_influence`). For a
team's own text-classification project: the served model's label probabilities for texts (:meth:`Service.classify`)
and a training on the project's annotated tasks (:meth:`Service.train_on_project`). A front end converts its own wire
format to and from these calls and never reaches into the rounds' state or the registry itself.

Importing this module is cheap (no torch): the model and the round steps are imported when first used.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from hildif.config import HildifConfig, TaskConfig
from hildif.errors import HildifError
from hildif.model.registry import ModelRegistry
from hildif.rounds.start import RoundError, validate_round_id
from hildif.rounds.state import RoundState, RoundStateError, round_for_project
from hildif.rounds.sync import recover_interrupted_syncs

if TYPE_CHECKING:  # pragma: no cover
    from hildif.influence.explain import StoreExplainer
    from hildif.labelstudio.client import LabelStudioClient
    from hildif.model.classifier import Classifier

log = logging.getLogger(__name__)

Pair = tuple[str, str]  # (premise, hypothesis)
MAX_SHOWN_CHARS = 300  # texts of influential examples are cut to this many characters in answers


class InfluenceNotReady(HildifError):
    """The served version's gradient store is not open in this process yet (:meth:`Service.open_influence`)."""


class InfluenceQueryError(HildifError, ValueError):
    """A query the served model cannot answer (e.g. an unknown label); ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def shorten(text: str | None, limit: int = MAX_SHOWN_CHARS) -> str | None:
    """``text`` cut at a word boundary to at most ``limit`` characters, marked with an ellipsis when cut."""
    if text is None or len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "…"


class Classification(NamedTuple):
    """What :meth:`Service.classify` answers: the model version that answered, its label names (class order) and the
    probabilities, shape (texts, labels)."""

    version: str
    labels: tuple[str, ...]
    probs: np.ndarray


class Service:
    """hildif's rounds and models for one configuration (its ``run.run_dir``). Safe to share between threads."""

    def __init__(self, cfg: HildifConfig) -> None:
        self.cfg = cfg
        self.registry = ModelRegistry(cfg.run.run_dir)
        self.state = RoundState(cfg.run_path("rounds.sqlite"))
        self._lock = threading.Lock()
        # Hugging Face fast tokenizers are not thread-safe (concurrent calls change each other's padding: seen as
        # "expected sequence of length 15 at dim 1 (got 12)" under 50 concurrent /predict): one inference at a time.
        self._inference_lock = threading.Lock()
        self._classifier: Classifier | None = None
        self._classifier_version: str | None = None
        self._explainer: tuple[str, StoreExplainer] | None = None  # (version, its open gradient store)
        self._influence_lock = threading.Lock()  # one influence query (or opening) at a time

    def recover(self) -> list[int]:
        """Mark syncs left running by a process that died as failed (not while a sync runs); their ids."""
        return recover_interrupted_syncs(self.cfg)

    # ------------------------------------------------------------------ model versions
    def current_version(self) -> str | None:
        """The served model version (None before any model was saved)."""
        return self.registry.current()

    def versions(self) -> list[str]:
        """Every saved model version, oldest first."""
        return [v["version"] for v in self.registry.versions()]

    def loaded_version(self) -> str | None:
        """The version this process has loaded (None until a similarity was asked for)."""
        return self._classifier_version

    def classifier(self) -> Classifier | None:
        """The served model, loaded once per version and reloaded only when the registry's pointer moves."""
        version = self.current_version()
        if version is None:
            return None
        with self._lock:
            if self._classifier is None or self._classifier_version != version:
                from hildif.model.loading import load_version

                log.info("loading model version %s", version)
                self._classifier = load_version(self.cfg, version)
                self._classifier_version = version
            return self._classifier

    def classify(self, texts: Sequence[tuple[str, str | None]]) -> Classification | None:
        """The served model's class probabilities for single texts ``(text, None)`` or pairs; None when no model is
        served."""
        from hildif.data.example import Example

        clf = self.classifier()
        if clf is None:
            return None
        version = str(getattr(clf, "version", None) or self._classifier_version or "")
        examples = [Example(f"t{i}", a, b, 0) for i, (a, b) in enumerate(texts)]
        with self._inference_lock:
            probs = clf.predict(examples) if examples else np.zeros((0, clf.num_labels))
        return Classification(version, clf.label_names, probs)

    def similarity(self, anchor: Pair, example: Pair) -> float | None:
        """Cosine similarity in [-1, 1] of the served model's representations of two (premise, hypothesis) pairs;
        None when no model is served."""
        from hildif.data.example import Example

        clf = self.classifier()
        if clf is None:
            return None
        pair = [Example("anchor", anchor[0], anchor[1], 0), Example("example", example[0], example[1], 0)]
        with self._inference_lock:
            feats = clf.features(pair)
        return float(np.dot(feats[0], feats[1]) / (np.linalg.norm(feats[0]) * np.linalg.norm(feats[1]) + 1e-12))

    # ------------------------------------------------------------------ interactive influence
    def influence_ready(self, version: str | None = None) -> bool:
        """Whether the gradient store of ``version`` (default: the served one) is open in this process."""
        version = version or self.current_version()
        found = self._explainer
        return version is not None and found is not None and found[0] == version

    def open_influence(self, version: str | None = None, progress: bool = False) -> dict[str, Any]:
        """Open the gradient store of ``version`` (default: the served one) for :meth:`influential`: read from the
        run's store cache when built before (``hildif explain`` and a round's start share it), else built by one pass
        over the training pool (minutes: a background job's work). The previous version's is closed. Returns what
        was done; ``{"skipped": ...}`` when ``version`` is no longer the served one."""
        import dataclasses

        from hildif.data.splits import load_train
        from hildif.influence.explain import StoreExplainer
        from hildif.influence.knn import index_cache_dir
        from hildif.model.loading import load_version

        current = self.current_version()
        version = version or current
        if version is None:
            raise InfluenceNotReady("no model is served yet: train one first (hildif train)")
        if version != current:
            return {"model_version": version, "skipped": f"version {version} is no longer served ({current} is)"}
        if self.influence_ready(version):
            return {"model_version": version, "opened": False}
        # its own copy of the model: the pass switches attention kernels and modes, which /predict must not see
        clf = load_version(self.cfg, version, attn_implementation="eager")
        icfg = dataclasses.replace(self.cfg.influence, candidates="store")
        explainer = StoreExplainer(clf, load_train(self.cfg.data), icfg, index_dir=index_cache_dir(self.cfg),
                                   store_dir=self.cfg.cache_path("store"), progress=progress, keep_prefixes=False)
        with self._influence_lock:
            self._explainer = (version, explainer)
        store = explainer.store
        log.info("gradient store of model %s open (%d x %d, %s)", version, store.size, store.dim,
                 "read from the cache" if store.from_cache else f"built in {store.build_seconds:.0f} s")
        return {"model_version": version, "opened": True, "from_cache": store.from_cache, "pool": store.size,
                "dim": store.dim, "seconds": round(explainer.ready_seconds, 1)}

    def influential(
        self, premise: str, hypothesis: str | None = None, *, label: int | str | None = None, k: int = 10,
        harmful: bool = False, rerank: int = 0,
    ) -> dict[str, Any]:
        """The ``k`` training examples most influential on the served model's loss for one text (pair), through the
        open gradient store (:class:`InfluenceNotReady` when it is not open: :meth:`open_influence`).

        ``label``: the class whose loss is explained (index or name); default the model's prediction ("which training
        examples made the model say this?"). ``harmful``: the most positive (harmful) first instead of the most
        negative (helpful). ``rerank`` > 0: the store's best ``rerank`` re-scored exactly by the engine (s_test;
        much slower); 0: the store's approximate scores (about a second). Texts are cut to MAX_SHOWN_CHARS.
        """
        from hildif.data.example import Example

        version = self.current_version()
        found = self._explainer
        if version is None or found is None or found[0] != version:
            raise InfluenceNotReady(f"the gradient store of model version {version} is not open yet")
        explainer = found[1]
        clf = explainer.classifier
        names = list(clf.label_names)
        with self._influence_lock:
            query = Example("query", premise, hypothesis, 0)
            probs = clf.predict([query])[0]
            if label is None:
                gold = int(np.argmax(probs))
            elif isinstance(label, str):
                if label not in names:
                    raise InfluenceQueryError("label", f"unknown label (this model's labels: {', '.join(names)})")
                gold = names.index(label)
            elif not 0 <= int(label) < len(names):
                raise InfluenceQueryError("label", f"must be between 0 and {len(names) - 1}")
            else:
                gold = int(label)
            result = explainer.explain([Example("query", premise, hypothesis, gold)], harmful=harmful, top_p=k,
                                       rerank=rerank)[0]
        details = result.details
        return {
            "model_version": version,
            "query": {"label": gold, "label_name": names[gold], "predicted": int(np.argmax(probs)),
                      "predicted_name": names[int(np.argmax(probs))], "probs": [round(float(p), 6) for p in probs]},
            "influential": [
                {"rank": i.rank, "id": i.example.id, "score": i.score, "label": i.example.label,
                 "label_name": names[i.example.label] if 0 <= i.example.label < len(names) else str(i.example.label),
                 "premise": shorten(i.example.premise), "hypothesis": shorten(i.example.hypothesis)}
                for i in result.influential
            ],
            "details": {"ranking": details["ranking"], "scored": details["store"]["scored"],
                        "exact": details["store"]["exact"], "reranked": details["candidates"] if rerank else 0,
                        "store_dim": details["store"]["dim"], "seconds": round(details["seconds"], 3),
                        "sign": details["sign"]},
        }

    # ------------------------------------------------------------------ rounds
    def round_for_project(self, project_id: int) -> str | None:
        """The round whose Label Studio project is ``project_id``, or None."""
        return round_for_project(self.state, project_id)

    def check_round(self, round_id: str) -> None:
        """Raise :class:`RoundStateError` (naming it) unless ``round_id`` is a round of this run."""
        self.state.round(round_id)

    def sync_round(self, round_id: str, client: LabelStudioClient) -> dict[str, Any]:
        """Sync ``round_id`` (pull ratings, fine-tune, maybe serve); :meth:`SyncResult.to_dict`."""
        from hildif.rounds.sync import sync_round

        return sync_round(self.cfg, round_id, client=client, progress=False).to_dict()

    def project_config(self, project_id: int) -> HildifConfig:
        """This run's configuration with its task read from Label Studio project ``project_id`` (``task.source =
        labelstudio``): the run's own task settings when they already name that project, else a fresh task section
        keeping the run's split and label policy."""
        task = self.cfg.task
        cfg = copy.deepcopy(self.cfg)
        if not (task.source == "labelstudio" and task.project_id == project_id and not task.files):
            cfg.task = TaskConfig(source="labelstudio", name=f"labelstudio-project-{project_id}", project_id=project_id,
                                  heldout_fraction=task.heldout_fraction, split_seed=task.split_seed,
                                  label_policy=task.label_policy, min_annotations=task.min_annotations)
        return cfg

    def train_on_project(self, project_id: int, client: LabelStudioClient) -> dict[str, Any]:
        """Train the configured model on Label Studio project ``project_id``'s annotated tasks (majority labels),
        save it as the served version; a summary (version, labels, examples)."""
        from hildif.baseline import train_baseline
        from hildif.labelstudio.export import load_project_task

        cfg = self.project_config(project_id)
        data = load_project_task(cfg, client)
        result = train_baseline(cfg, task_data=data)
        return {"project_id": project_id, "version": result["version"], "labels": list(data.task.labels),
                "train_examples": len(data.train), "heldout_examples": len(data.heldout)}

    def start_round(self, round_id: str, selection: dict[str, Any], client: LabelStudioClient) -> dict[str, Any]:
        """Start ``round_id`` with the anchor selection ``selection`` (:meth:`AnchorSelection.from_dict`);
        :meth:`StartResult.to_dict`."""
        from hildif.rounds.start import AnchorSelection, start_round

        return start_round(self.cfg, round_id, AnchorSelection.from_dict(selection), client=client,
                           progress=False).to_dict()


__all__ = ["Classification", "InfluenceNotReady", "InfluenceQueryError", "Pair", "RoundError", "RoundStateError",
           "Service", "shorten", "validate_round_id"]
