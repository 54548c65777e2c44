#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. .ci/run calls this; pytest arguments pass through,
# e.g. `bash scripts/test.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HILDIF_DATA_DIR=${HILDIF_DATA_DIR:-$(cd .. && pwd)/shared/data}
export HILDIF_CACHE_DIR=${HILDIF_CACHE_DIR:-${TMPDIR:-/tmp}/hildif-cache}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# setup.sh installed Label Studio and the test tools: their tests must run, not skip (tests/required.py)
export HILDIF_REQUIRE_LABEL_STUDIO=${HILDIF_REQUIRE_LABEL_STUDIO:-1}
export HILDIF_REQUIRE_BROWSER=${HILDIF_REQUIRE_BROWSER:-1} HILDIF_REQUIRE_POSTGRES=${HILDIF_REQUIRE_POSTGRES:-1}
export HILDIF_REQUIRE_DOCKER_COMPOSE=${HILDIF_REQUIRE_DOCKER_COMPOSE:-1}
mkdir -p test-artifacts
set +e
.venv/bin/python -m pytest -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  # a selection that runs nothing is a mistake (a typo in -k or -m), never a passing CI run
  echo "scripts/test.sh: pytest collected no tests (exit 5): this selection runs nothing; failing" >&2
fi
exit $rc
