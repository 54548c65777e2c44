#!/usr/bin/env bash
# `hildif round sync`: pull ratings, fine-tune, evaluate, serve the new model. Arguments pass through (--help).
exec "$(dirname "$0")/_hildif.sh" round sync "$@"
