#!/usr/bin/env bash
# A local Label Studio (from .venv-ls, made by scripts/setup.sh) on 127.0.0.1 until Ctrl-C. Options: --data-dir DIR
# (default runs/label-studio), --port 8080, --allow-local-backends (lets it call the hildif backend on this machine).
# A new data folder's admin: $HILDIF_LS_ADMIN_PASSWORD, $HILDIF_LS_ADMIN_TOKEN (at most 40 characters).
HILDIF_MODULE=hildif.labelstudio.server exec "$(dirname "$0")/_hildif.sh" "$@"
