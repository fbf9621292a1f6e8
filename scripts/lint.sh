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

echo "== ansible-galaxy collection build, ansible-doc"
build=$(mktemp -d /tmp/lifeline-build.XXXXXX)
if ansible-galaxy collection build --output-path "$build" >/dev/null \
   && [ "$(ansible-doc -l lifeline.dr | grep -c '^lifeline\.dr\.')" -eq "$(ls plugins/modules/*.py | wc -l)" ]; then
  echo "built $(basename "$build"/*.tar.gz); every module has documentation"
else
  echo "collection build or ansible-doc failed"; status=1
fi
rm -rf "$build"

echo "== antsibull-changelog: fragments valid, CHANGELOG.rst generated from changelogs/changelog.yaml"
if antsibull-changelog lint && antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml; then
  echo "changelog fragments and changelog.yaml are valid"
else
  echo "antsibull-changelog lint failed"; status=1
fi

echo "== ansible-test sanity"
# ansible-test needs ansible-core alone in its own venv (its sanity requirements would clash with
# ansible-lint's), and a pip bootstrap it normally downloads from an unreachable host.
sanity_venv=.state/sanity-venv
core=$(python -c 'import ansible; print(ansible.__version__)')
if [ "$("$sanity_venv/bin/python" -c 'import ansible; print(ansible.__version__)' 2>/dev/null)" != "$core" ]; then
  python3 -m venv "$sanity_venv"
  "$sanity_venv/bin/pip" install -q "ansible-core==$core"
fi
pip_version=$("$sanity_venv/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
mkdir -p ~/.ansible/test/cache
cp tests/sanity/get_pip.py ~/.ansible/test/cache/get_pip_${pip_version//./_}.py
work=$(mktemp -d /tmp/lifeline-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/lifeline/dr"
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard | \
  (cd "$root" && xargs -0 -I{} cp --parents {} "$dest"/) 2>/dev/null || true
cd "$dest"
git init -q && git add -A && git -c user.name=ci -c user.email=ci@localhost commit -qm sanity
# CHANGELOG.rst must be what antsibull-changelog generates from changelog.yaml (docs/releasing.md)
if antsibull-changelog generate && git diff --quiet -- CHANGELOG.rst changelogs/changelog.yaml; then
  echo "CHANGELOG.rst is up to date"
else
  git diff --stat -- CHANGELOG.rst changelogs/changelog.yaml; echo "CHANGELOG.rst differs from what antsibull-changelog generates"; status=1
fi
git checkout -q -- . && git clean -qfdx
"$root/$sanity_venv/bin/ansible-test" sanity --python 3.11 --requirements --color no || status=1
exit "$status"
