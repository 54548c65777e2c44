#!/usr/bin/env bash
# Shared by the admin wrappers: run `python -m MODULE ARGS...` (default module hildif.cli) in the caller's directory
# with its virtual environment ($HILDIF_PYTHON overrides). Label Studio's API key comes from $LABEL_STUDIO_API_KEY.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${HILDIF_PYTHON:-$ROOT/.venv/bin/python}
MODULE=${HILDIF_MODULE:-hildif.cli}
exec env PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m "$MODULE" "$@"
