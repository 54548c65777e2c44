"""Offline language resources for augmentation: a WordNet corpus for NLTK, a POS tagger, Apertium.

Nothing here downloads anything. Each resource is looked up on the machine and, when missing, raises
:class:`ResourceMissingError` whose message names what to install.

WordNet
    Debian's ``wordnet-base`` and ``wordnet-sense-index`` put WordNet 3.0 in ``/usr/share/wordnet``
    (``HILDIF_WORDNET_SRC`` overrides). :func:`ensure_wordnet` copies the files NLTK reads into
    ``<nltk_data>/corpora/wordnet`` and writes the ``lexnames`` file that Debian leaves out. ``<nltk_data>`` is
    :func:`nltk_data_dir` (``$HILDIF_CACHE_DIR/nltk_data``, default ``~/.cache/hildif/nltk_data``). The build runs
    once (a marker file records the source sizes), under a file lock, into a temporary folder that is renamed into
    place, so concurrent first uses and crashes never leave a half-written corpus.
POS tagger
    nlpaug's ``SynonymAug`` tags with ``nltk.pos_tag``, whose model is not installable offline. :func:`pos_tag`
    uses textblob's bundled Pattern tagger (Penn Treebank tags, no data download).
Apertium
    :func:`apertium_available` checks that the ``apertium`` binary and a language pair (Debian
    ``apertium-eng-spa``) are installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from hildif.config import machine_cache_dir
from hildif.errors import HildifError
from hildif.utils.atomic import atomic_dir, write_json_atomic
from hildif.utils.locks import file_lock

WORDNET_SRC_DEFAULT = "/usr/share/wordnet"
WORDNET_FILES = (
    [f"data.{p}" for p in ("noun", "verb", "adj", "adv")]
    + [f"index.{p}" for p in ("noun", "verb", "adj", "adv")]
    + [f"{p}.exc" for p in ("noun", "verb", "adj", "adv")]
    + ["index.sense"]
)
WORDNET_DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")
APERTIUM_DEBIAN_PACKAGES = ("apertium", "apertium-eng-spa")
_MARKER = "hildif_wordnet.json"

# WordNet 3.0 lexicographer files (lexnames(5WN)): number, name, syntactic category (1 noun, 2 verb, 3 adj, 4 adv).
LEXNAMES = (
    ["adj.all", "adj.pert", "adv.all", "noun.Tops"]
    + [
        f"noun.{n}"
        for n in (
            "act animal artifact attribute body cognition communication event feeling food group location motive "
            "object person phenomenon plant possession process quantity relation shape state substance time"
        ).split()
    ]
    + [
        f"verb.{n}"
        for n in (
            "body change cognition communication competition consumption contact creation emotion motion "
            "perception possession social stative weather"
        ).split()
    ]
    + ["adj.ppl"]
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class ResourceMissingError(HildifError, RuntimeError):
    """A language resource is not installed; the message says what to install."""


def nltk_data_dir() -> Path:
    """The NLTK data folder hildif manages (never the user's own ``nltk_data``), in the machine-wide cache."""
    return machine_cache_dir() / "nltk_data"


def lexnames_text() -> str:
    """The 45-line ``lexnames`` file: ``NN<TAB>name<TAB>category``."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def _wordnet_source() -> Path:
    return Path(os.environ.get("HILDIF_WORDNET_SRC", WORDNET_SRC_DEFAULT))


def _source_signature(src: Path) -> dict[str, int]:
    missing = [name for name in WORDNET_FILES if not (src / name).is_file()]
    if missing:
        raise ResourceMissingError(
            f"WordNet files missing in {src}: {', '.join(missing)}. Install the Debian packages "
            f"{' '.join(WORDNET_DEBIAN_PACKAGES)} (apt-get install -y {' '.join(WORDNET_DEBIAN_PACKAGES)}) "
            "or point HILDIF_WORDNET_SRC at a WordNet 3.0 dict folder."
        )
    return {name: (src / name).stat().st_size for name in WORDNET_FILES}


def ensure_wordnet(data_dir: str | Path | None = None, source: str | Path | None = None) -> Path:
    """Build (once) the NLTK WordNet corpus from Debian's files; return the NLTK data folder that holds it.

    Idempotent and safe under concurrency. Also puts the folder first on ``nltk.data.path``.
    Raises :class:`ResourceMissingError` naming the Debian packages when the source files are absent.
    """
    data_dir = Path(data_dir) if data_dir else nltk_data_dir()
    src = Path(source) if source else _wordnet_source()
    target = data_dir / "corpora" / "wordnet"
    signature = _source_signature(src)
    expected = {"source": str(src), "files": signature, "lexnames": len(LEXNAMES)}

    def built() -> bool:
        try:
            return json.loads((target / _MARKER).read_text()) == expected
        except (OSError, ValueError):
            return False

    if not built():
        with file_lock(data_dir / ".wordnet.lock"):
            if not built():
                with atomic_dir(target) as tmp:
                    for name in WORDNET_FILES:
                        shutil.copyfile(src / name, tmp / name)
                    (tmp / "lexnames").write_text(lexnames_text())
                    write_json_atomic(tmp / _MARKER, expected)
    _register_nltk_path(data_dir)
    return data_dir


def _register_nltk_path(data_dir: Path) -> None:
    import nltk

    path = str(data_dir)
    if path not in nltk.data.path:
        nltk.data.path.insert(0, path)


def load_wordnet(data_dir: str | Path | None = None):
    """The NLTK WordNet reader over the project's corpus (built on first use)."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    folder = ensure_wordnet(data_dir) / "corpora" / "wordnet"
    return WordNetCorpusReader(str(folder), None)


_TAGGER = None


def pos_tag(tokens: list[str]) -> list[tuple[str, str]]:
    """Penn Treebank tags for already tokenised ``tokens`` with textblob's Pattern tagger (offline).

    Returns one ``(token, tag)`` per input token, in order (the drop-in for ``nltk.pos_tag``).
    """
    global _TAGGER
    if _TAGGER is None:
        try:
            from textblob.en.taggers import PatternTagger
        except ImportError as exc:  # pragma: no cover - textblob is a dependency
            raise ResourceMissingError("POS tagger missing: pip install textblob") from exc
        _TAGGER = PatternTagger()
    clean = [t.replace(" ", "_") or "_" for t in tokens]
    tagged = _TAGGER.tag(" ".join(clean), tokenize=False) if clean else []
    if len(tagged) != len(tokens):  # the tagger split or merged something: tag token by token
        tagged = [(_TAGGER.tag(t, tokenize=False) or [(t, "NN")])[0] for t in clean]
    return [(tok, tag) for tok, (_, tag) in zip(tokens, tagged)]


def apertium_available(pair: str = "eng-spa") -> bool:
    """True when ``apertium`` runs and both directions of ``pair`` (e.g. ``eng-spa``) are installed."""
    if shutil.which("apertium") is None:
        return False
    src, tgt = pair.split("-", 1)
    try:
        out = subprocess.run(["apertium", "-l"], capture_output=True, text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return False
    return f"{src}-{tgt}" in out and f"{tgt}-{src}" in out


def require_apertium(pair: str = "eng-spa") -> None:
    """Raise :class:`ResourceMissingError` naming the Debian packages unless Apertium and ``pair`` are usable."""
    if not apertium_available(pair):
        raise ResourceMissingError(
            f"Apertium back translation needs the binary 'apertium' and the pair {pair} in both directions. "
            f"Install the Debian packages: apt-get install -y apertium apertium-{pair}"
        )
