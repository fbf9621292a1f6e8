# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The signed file tree of an rsync snapshot: what each entry must be when it is restored.

An rsync snapshot lives outside the repositories, at a place other hosts may be able to write
to (a shared target), so its files are not covered by the manifest's signature as a tar archive
is. At backup time every entry of the snapshot is described (name, type, mode, owner, size,
sha256 of the content, link target, sha256 of each extended attribute: ACLs and file
capabilities are xattrs) into ``files.rsync-tree``, an artifact encrypted and bound to the
signed manifest like any other. A restore copies the snapshot into staging and compares every
staged entry with it before anything is moved into place.

One JSON object per line, sorted by name: ``{"n": name, "t": type, "m": mode, "u": uid,
"g": gid, "s": size, "h": sha256, "l": link target, "x": {xattr: sha256}}`` (``s``/``h`` for
regular files, ``l`` for symlinks); names are member-style (``srv/data/x``), non-UTF-8 bytes
as surrogate escapes.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat

from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError

TREE_ARTIFACT = "files.rsync-tree"
TREE_KIND = "rsync-tree"
_TYPES = {stat.S_IFDIR: "d", stat.S_IFREG: "f", stat.S_IFLNK: "l", stat.S_IFIFO: "p", stat.S_IFSOCK: "s"}
_LABELS = {"t": "type", "m": "mode", "u": "owner", "g": "group", "s": "size", "h": "content", "l": "link target",
           "x": "xattrs/ACLs"}
_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        with os.fdopen(fd, "rb", closefd=False) as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)
    finally:
        os.close(fd)
    return digest.hexdigest()


def describe(path: str, name: str) -> dict:
    """The entry at ``path`` as the tree records it (``name``: its member-style name)."""
    info = os.lstat(path)
    kind = _TYPES.get(stat.S_IFMT(info.st_mode), "?")  # '?': a device node, never restored
    entry = {"n": name, "t": kind, "m": stat.S_IMODE(info.st_mode), "u": info.st_uid, "g": info.st_gid}
    if kind == "f":
        entry.update(s=info.st_size, h=_sha256_file(path))
    elif kind == "l":
        entry["l"] = os.readlink(path)
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        names = []
    entry["x"] = {key: hashlib.sha256(os.getxattr(path, key, follow_symlinks=False)).hexdigest()
                  for key in sorted(names)}
    return entry


def walk(base: str, rel: str):
    """Entries of the tree at ``base``/``rel`` (itself included), sorted by name."""
    top = os.path.join(base, rel)
    out = [(rel, top)]
    for dirpath, dirnames, filenames in os.walk(top):
        sub = os.path.relpath(dirpath, top)
        prefix = rel if sub == "." else posixpath.join(rel, sub)
        out.extend((posixpath.join(prefix, n), os.path.join(dirpath, n)) for n in dirnames + filenames)
    for name, path in sorted(out):
        yield describe(path, name)


def write_tree(base: str, rels: list, out) -> int:
    """Write the tree of every ``rels`` below ``base`` to the binary file ``out``; entry count."""
    count = 0
    for rel in rels:
        for entry in walk(base, rel):
            out.write(json.dumps(entry, sort_keys=True).encode("ascii") + b"\n")
            count += 1
    return count


def _valid(entry, what: str) -> dict:
    ok = (isinstance(entry, dict) and isinstance(entry.get("n"), str) and entry.get("t") in ("d", "f", "l", "p", "s")
          and all(isinstance(entry.get(k), int) and entry.get(k) >= 0 for k in "mug")
          and isinstance(entry.get("x"), dict)
          and all(isinstance(k, str) and isinstance(v, str) and _HEX.match(v) for k, v in entry["x"].items()))
    if ok and entry["t"] == "f":
        ok = isinstance(entry.get("s"), int) and isinstance(entry.get("h"), str) and bool(_HEX.match(entry["h"]))
    if ok and entry["t"] == "l":
        ok = isinstance(entry.get("l"), str)
    if not ok:
        raise IntegrityError("%s holds a malformed entry" % what)
    return entry


def read_tree(path: str, rels: list, what: str) -> dict:
    """name -> entry for the entries of the staged tree artifact at ``path`` below ``rels``."""
    tree = {}
    with open(path, "rb") as fh:
        for line in fh:
            try:
                entry = _valid(json.loads(line), what)
            except ValueError:
                raise IntegrityError("%s is not a file tree (a line is not JSON)" % what) from None
            if any(entry["n"] == r or entry["n"].startswith(r + "/") for r in rels):
                tree[entry["n"]] = entry
    return tree


def compare(stage: str, rels: list, tree: dict, what: str) -> int:
    """Compare every entry staged below ``stage``/``rels`` with ``tree``; IntegrityError naming
    the differences (names only, never content) unless each matches. Returns the entry count."""
    seen = set()
    wrong = []
    for rel in rels:
        for entry in walk(stage, rel):
            seen.add(entry["n"])
            want = tree.get(entry["n"])
            if want is None:
                wrong.append("/%s is not in the signed tree" % entry["n"])
            elif want != entry:
                fields = sorted(_LABELS.get(k, k) for k in set(want) | set(entry) if want.get(k) != entry.get(k))
                wrong.append("/%s differs (%s)" % (entry["n"], ", ".join(fields)))
    wrong.extend("/%s is missing" % n for n in sorted(set(tree) - seen))
    if wrong:
        raise IntegrityError("%s: the snapshot does not match the file tree its signed backup records (%d "
                             "differences, e.g. %s); nothing was moved into place"
                             % (what, len(wrong), "; ".join(wrong[:5])))
    return len(seen)
