#!/usr/bin/env bash
# Install everything the demo and the tests need on a fresh Debian 12 machine (run as root).
# apt: the real services the tests drive; pip: the controller's Python tools, into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql postgresql-client redis-server pgbackrest rsync zstd age
              tar acl attr restic  # tar/acl/attr: files tests; restic: the files benchmark
              openssh-server       # sshd the rsync-over-SSH test starts on loopback (never the system one)
              podman runc debootstrap python3-venv python3-pip make git)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "lifeline: installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps Debian from starting system-wide PostgreSQL/Redis: tests start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-ee.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "lifeline: installing Python requirements into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# The checkout doubles as the lifeline.dr collection (ansible.cfg's collections_path).
.venv/bin/python tests/lib/collection.py
