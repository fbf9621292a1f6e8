#!/usr/bin/env bash
# Every test: unit and integration (real PostgreSQL 15, moto S3, tmpfs), ansible-lint and
# ansible-test sanity, then molecule (podman containers with systemd). Runs every stage even
# after a failure so one run shows everything; exits non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
export PATH="$PWD/.venv/bin:$PATH"

failed=()
stage() {
  local name=$1; shift
  echo "======== $name"
  local start=$SECONDS
  if "$@"; then echo "======== $name: ok ($((SECONDS - start)) s)"
  else echo "======== $name: FAILED ($((SECONDS - start)) s)"; failed+=("$name"); fi
}
stage "lint and sanity" bash scripts/lint.sh
stage "molecule" bash scripts/molecule.sh
stage "pytest (unit, integration)" python -m pytest tests/unit tests/integration -q -p no:cacheprovider

if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}"
  exit 1
fi
echo "all stages passed"
