#!/usr/bin/env bash
# `hildif round status`: progress per pair and annotator, agreement. Arguments pass through (--help).
exec "$(dirname "$0")/_hildif.sh" round status "$@"
