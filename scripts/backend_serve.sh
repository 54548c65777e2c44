#!/usr/bin/env bash
# `hildif backend serve`: the Label Studio ML backend (gunicorn, 127.0.0.1:9090). Arguments pass through (--help).
exec "$(dirname "$0")/_hildif.sh" backend serve "$@"
