#!/usr/bin/env bash
# `hildif round start`: select anchors, explain, push rating tasks (idempotent). Arguments pass through (--help).
exec "$(dirname "$0")/_hildif.sh" round start "$@"
