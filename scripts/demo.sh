#!/usr/bin/env bash
# The main job on the embedded local default: throwaway PostgreSQL x2, Redis x2 and S3 (moto) on
# loopback plus a sample file tree; back up, list the catalog, rebuild with restore-site.yml, prove
# the restored site matches the source, print the RTO. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$PWD/.venv/bin:$PATH"
export LIFELINE_LOCAL_STATE="${LIFELINE_LOCAL_STATE:-$PWD/.state/local}"

python scripts/local-services.py start
trap 'python scripts/local-services.py stop' EXIT

echo "== 1. backup.yml: every database and the roles, to the local repository and to S3"
ansible-playbook -i inventories/local playbooks/backup.yml
echo "== 2. catalog.yml: what the repositories hold"
ansible-playbook -i inventories/local playbooks/catalog.yml
echo "== 3. restore-site.yml: rebuild the second server from the newest backup"
ansible-playbook -i inventories/local playbooks/restore-site.yml
echo "== 4. verify: the restored site equals the source (pg_dumpall, Redis keys and TTLs, files and secrets)"
python scripts/compare-site.py
