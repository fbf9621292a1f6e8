#!/usr/bin/env bash
# Run `molecule test` against local podman containers: ./scripts/molecule.sh [molecule test args]
# e.g. ./scripts/molecule.sh --scenario-name default. Leaves no scenario containers behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)   # physical path: compared with readlink -f below

export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/tests/containers/containers.conf}"
# molecule shells out to ansible-config/ansible-playbook by name: they must be on PATH.
export PATH="$ROOT/.venv/bin:$PATH"

scripts/build-test-image.sh

# The checkout doubles as the lifeline.dr collection (.state/collections symlink).
python tests/lib/collection.py

# Test keys and an S3 endpoint for the scenario. moto listens on all addresses because the
# bridge address (10.88.0.1) only exists once a container does; the containers reach it there.
state=.state/molecule
rm -rf "$state" && mkdir -p "$state" && chmod 0700 "$state"
(umask 077 && age-keygen -o "$state/identity.txt" 2>/dev/null)
age-keygen -y "$state/identity.txt" > "$state/recipient.txt"
# The source container's manifest signing key, and its public half that restores trust.
(umask 077 && openssl genpkey -algorithm ed25519 -out "$state/signing_key.pem")
openssl pkey -in "$state/signing_key.pem" -pubout -out "$state/signing_public.pem"
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 0.0.0.0 -p "$port" >"$state/moto.log" 2>&1 &
moto_pid=$!
echo "http://10.88.0.1:$port" > "$state/s3_endpoint"
python - "$port" <<'PY'
import sys, time, boto3
url = "http://127.0.0.1:%s" % sys.argv[1]
for _ in range(100):
    try:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                     aws_secret_access_key="x").create_bucket(Bucket="lifeline-molecule")
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("moto_server did not start")
PY

# Container names every scenario uses (platform names in molecule/*/molecule.yml).
NAMES=(lifeline-source lifeline-restored)
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  local left=()
  for n in "${NAMES[@]}"; do podman container exists "$n" && left+=("$n"); done
  [ "${#left[@]}" -eq 0 ] && return 0
  echo "lifeline: removing leftover containers: ${left[*]}"
  # Through molecule first so its state file stops claiming "created" (else the next
  # `molecule create` skips); plain podman rm catches whatever that missed.
  molecule destroy --all >/dev/null 2>&1 || true
  for n in "${left[@]}"; do podman rm -f -t 5 "$n" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM   # exit, so EXIT's cleanup runs once and we stop

molecule test "$@"
