"""HANS is the test, never the training data (issue 25's decision): no product module reads HANS's training file,
only the evaluation path loads HANS at all, and no module holds HANS's sentences or its vocabulary of nouns.

HANS's vocabulary is read from the data itself (the nouns its template sentences open with, "The <noun> ..."), so the
check follows the file, not a list copied here. Verbs of known semantics (factive ``knew`` vs non-factive
``thought``, veridical ``because`` vs conditional ``if``) are what a construction is about and are allowed: they are
English's, and a construction pair uses them in both labels."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = [p for d in ("hildif", "ml_backend") for p in sorted((REPO / d).rglob("*.py"))]
# the modules that may load HANS: the evaluation sets (data/splits.py) and `hildif explain` on HANS examples
HANS_LOADERS = {"hildif/data/splits.py", "hildif/data/__init__.py", "hildif/commands/explain.py"}


def _rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


@pytest.fixture(scope="module")
def hans_rows(data_dir):
    from hildif.config import DataConfig
    from hildif.data.splits import load_hans

    cfg = DataConfig(data_dir=str(data_dir))
    train = load_hans(DataConfig(data_dir=str(data_dir), hans_file="hans/heuristics_train_set.jsonl.gz"))
    return load_hans(cfg) + train


@pytest.fixture(scope="module")
def hans_nouns(hans_rows):
    """The nouns HANS's sentences open with ("The professor ...", "The doctors ..."), singular, seen >= 100 times."""
    c = Counter()
    for e in hans_rows:
        for text in (e.premise, e.hypothesis):
            m = re.match(r"The (\w+) ", text)
            if m:
                c[m.group(1).lower().removesuffix("s")] += 1
    nouns = {w for w, n in c.items() if n >= 100}
    assert len(nouns) >= 10, nouns  # HANS's subjects come from a small lexicon
    return nouns


def test_no_product_module_reads_hans_training_rows_or_loads_hans_outside_evaluation():
    offenders = []
    for p in PRODUCT:
        text = p.read_text(encoding="utf-8")
        if "heuristics_train_set" in text:
            offenders.append(f"{_rel(p)}: names HANS's training file")
        if re.search(r"\bload_hans\b", text) and _rel(p) not in HANS_LOADERS:
            offenders.append(f"{_rel(p)}: loads HANS")
    assert not offenders, offenders
    # the modules that build fine-tuning data (augmentation, constructions, their sources) hold no HANS path or name
    # in their code (docstrings and comments may say what a construction speaks to)
    builders = sorted((REPO / "hildif/feedback").rglob("*.py")) + [REPO / "hildif/influence/neighbourhood.py"]
    assert [p for p in builders if "hans" in _code_strings(p) or "evaluation_sets" in p.read_text()] == []


def _code_strings(p: Path) -> str:
    """The string constants of ``p``'s code, docstrings left out, lowercase."""
    tree = ast.parse(p.read_text(encoding="utf-8"))
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    docs = {ast.get_docstring(n, clean=False) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    return " ".join(s for s in strings if s not in docs).lower()


def _literal_collections(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(items) >= 3:
                yield node.lineno, items


def test_no_product_module_holds_hans_nouns_or_sentences(hans_rows, hans_nouns):
    sentences = {" ".join(t.split()).lower() for e in hans_rows for t in (e.premise, e.hypothesis)}
    offenders = []
    for p in PRODUCT:
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for line, items in _literal_collections(tree):
            words = {w.lower().removesuffix("s") for w in items}
            hits = words & hans_nouns
            if len(hits) >= 3:
                offenders.append(f"{_rel(p)}:{line} holds HANS's nouns {sorted(hits)}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value.split()) >= 3:
                if " ".join(node.value.split()).lower() in sentences:
                    offenders.append(f"{_rel(p)}:{node.lineno} holds a HANS sentence {node.value!r}")
    assert not offenders, offenders


def test_the_check_finds_what_it_looks_for(hans_nouns, tmp_path):
    """The noun check itself: a module holding four of HANS's nouns is caught."""
    some = sorted(hans_nouns)[:4]
    tree = ast.parse(f"SUBJECTS = {tuple(some)!r}\n")
    found = [items for _, items in _literal_collections(tree)
             if len({w.lower().removesuffix('s') for w in items} & hans_nouns) >= 3]
    assert found == [list(some)]
