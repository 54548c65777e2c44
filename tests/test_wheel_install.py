"""A non-editable install works: the wheel built from this checkout, installed into a fresh virtual environment,
runs ``hildif --help`` and reads the rating template from the installed package (importlib.resources), not from
the checkout.

The fresh environment gets hildif from the wheel only (``pip install --no-deps --no-index``); its dependencies come
from the running environment's site-packages, added by a ``.pth`` file (which adds the folder to ``sys.path``
without running that folder's own ``.pth`` files, so an editable install of hildif there stays inactive). The
command runs from a temporary folder with no ``PYTHONPATH``, so the checkout cannot shadow the installed package.
The wheel is built without build isolation when the running environment has setuptools >= 77 (the
``build-system`` requirement), else pip fetches setuptools from PyPI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "hildif", "ml_backend")


def _setuptools_is_recent() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of the checkout (setuptools writes build/ and *.egg-info into the source folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if _setuptools_is_recent():
        cmd.insert(4, "--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), cwd=out, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("hildif-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


def test_the_wheel_carries_the_template_and_the_backend(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "hildif/labelstudio/templates/rating.xml" in names
    assert "hildif/rounds/templates/report.html" in names  # the round's and the demo's HTML page
    assert "hildif/data/sources.json" in names and "ml_backend/__main__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "label_config/"))]


def test_an_installed_wheel_runs_and_finds_its_template(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_hildif_test_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, env=_clean_env(),
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    run = tmp_path / "elsewhere"
    run.mkdir()
    helped = subprocess.run([str(venv / "bin" / "hildif"), "--help"], capture_output=True, text=True,
                            env=_clean_env(), cwd=run, timeout=600)
    assert helped.returncode == 0, helped.stdout + helped.stderr
    assert "demo" in helped.stdout and "round" in helped.stdout

    probe = ("import json, hildif, ml_backend\n"
             "from hildif.labelstudio.template import load_label_config, rating_tags\n"
             "from importlib import resources\n"
             "from hildif.rounds.html_report import render_page\n"
             "xml = load_label_config(); tags = rating_tags()\n"
             "page = render_page('# A round\\n\\n| a |\\n|---|\\n| 1 |\\n', '.', 'r')\n"
             "print(json.dumps({'hildif': hildif.__file__, 'ml_backend': ml_backend.__file__,\n"
             "  'page': '<h1>A round</h1>' in page and '<td>1</td>' in page,\n"
             "  'template': str(resources.files('hildif.labelstudio') / 'templates' / 'rating.xml'),\n"
             "  'has_choices': '<Choices' in xml, 'from_name': tags.from_name, 'to_name': tags.to_name}))\n")
    proc = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=_clean_env(), cwd=run,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("hildif", "ml_backend", "template"):
        assert Path(found[key]).resolve().is_relative_to(purelib.resolve()), (key, found[key])
    assert found["has_choices"] and (found["from_name"], found["to_name"]) == ("similarity", "anchor_premise")
    assert found["page"]  # the report page's template, read from the installed package
