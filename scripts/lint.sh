#!/usr/bin/env bash
# ansible-lint (production profile) and ansible-test sanity on a copy of the tracked tree laid
# out as ansible_collections/lifeline/dr (ansible-test needs that path).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
root=$PWD

status=0
echo "== ansible-lint (production profile)"
ansible-lint --profile production --offline || status=1

echo "== ansible-test sanity"
work=$(mktemp -d /tmp/lifeline-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/lifeline/dr"
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | \
  (cd "$root" && xargs -0 -I{} cp --parents {} "$dest"/) 2>/dev/null || true
cd "$dest"
git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm sanity
ansible-test sanity --python 3.11 --venv --color no || status=1
exit "$status"
