# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GNU tar for the files component: the argv that writes and reads archives, what tar's
warnings mean, and the check of an archive's listing before anything is extracted.

Archives are POSIX (pax) with GNU incremental dumpdirs (``--listed-incremental``), ACLs and
xattrs (``--acls --xattrs --xattrs-include=*``) and sparse files; member names are relative to
``/`` (``srv/data/x`` for ``/srv/data/x``), so stock ``tar -x`` restores them anywhere.
Whatever is read back from a repository is hostile: ``check_listing`` refuses absolute names,
``..``, names outside the backed-up paths, hard links that point outside them, members below a
symlink, device nodes and dumpdir rename records that leave the tree (GNU tar itself defers
dangerous symlinks; restic refuses the same shapes).
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import subprocess
import tarfile

from ansible_collections.lifeline.dr.plugins.module_utils.errors import DependencyError, IntegrityError

TAR = "tar"
#: the kind of the one artifact of a tar files backup
ARTIFACT_KIND = "tar"
#: C locale: messages parseable, names passed as bytes (a non-UTF-8 name is stored as such)
ENV = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
_COMMON = ["--format=posix", "--acls", "--xattrs", "--xattrs-include=*"]
EXTRACT_FLAGS = _COMMON + ["--listed-incremental=/dev/null", "--delay-directory-restore",
                           "--no-overwrite-dir", "--same-owner", "--same-permissions"]

# "tar: srv/x: file changed as we read it" and friends: one path that could not be (fully) read.
_SKIPPED_RE = re.compile(
    r"^tar: (?P<path>.+?): (?P<cause>file changed as we read it|File removed before we read it"
    r"|Cannot (?:open|stat|read|readlink|savedir|listxattr|getxattr|get_xattr|getfacl)[^:]*: .+"
    r"|Read error at byte \d+.*|File shrank by \d+ bytes.*)$")
_BENIGN_RE = re.compile(r"^tar: (Exiting with failure status due to previous errors"
                        r"|.+: (socket ignored|file is unchanged; not dumped|Directory is new"
                        r"|Directory has been renamed.*))$")


def tar_version() -> str:
    """``tar --version``'s first line; DependencyError unless it is GNU tar."""
    try:
        out = subprocess.run([TAR, "--version"], capture_output=True, check=False, env=ENV, timeout=30)
    except OSError as exc:
        raise DependencyError("cannot run GNU tar (%s); install the Debian package tar" % exc.strerror) from None
    first = out.stdout.decode("utf-8", "replace").splitlines()[:1]
    if not first or "GNU tar" not in first[0]:
        raise DependencyError("the files component needs GNU tar; %r is not (install the Debian package tar)" % TAR)
    return first[0].strip()


def relative(path: str) -> str:
    """An absolute path as a member name: '/srv/data' -> 'srv/data' ('/' -> '.')."""
    return posixpath.relpath(path, "/")


def create_argv(paths: list, *, snapshot: str, exclude: list, index_file: str) -> list:
    """tar writing a pax archive of ``paths`` (absolute) to stdout, relative to /."""
    return ([TAR, "--create", "--file=-", "--directory=/", "--listed-incremental=" + snapshot,
             "--no-check-device", "--sparse", *_COMMON, "-vv", "--index-file=" + index_file,
             "--quoting-style=escape", "--warning=no-file-ignored", "--warning=no-new-directory"]
            + ["--exclude=" + pattern for pattern in exclude] + ["--"] + [relative(p) for p in paths])


def skipped_paths(stderr: str) -> tuple[dict, list]:
    """({'/path': cause} for every path tar could not read, [lines tar said otherwise])."""
    skipped, other = {}, []
    for line in stderr.splitlines():
        match = _SKIPPED_RE.match(line)
        if match:
            skipped["/" + match.group("path").lstrip("/")] = match.group("cause")
        elif line.strip() and not _BENIGN_RE.match(line):
            other.append(line)
    return skipped, other


def index_counts(index_text: str) -> dict:
    """Members and regular-file bytes from tar's ``-vv`` index (one ls-style line per member)."""
    members = size = 0
    for line in index_text.splitlines():
        fields = line.split(None, 3)
        if len(fields) < 3:
            continue
        members += 1
        if fields[0].startswith("-"):
            size += int(fields[2])
    return {"members": members, "bytes": size}


@dataclasses.dataclass
class Listing:
    """What one archive holds, as checked: counts and the names (for the chain's model)."""

    members: int = 0
    bytes: int = 0
    names: dict = dataclasses.field(default_factory=dict)      # name -> type (b'5', b'2', ...)
    dumpdirs: dict = dataclasses.field(default_factory=dict)   # directory -> set of entry names
    renames: list = dataclasses.field(default_factory=list)    # (from, to) directory renames


def _clean(name: str, what: str) -> str:
    if "\x00" in name or name.startswith("/") or not name:
        raise IntegrityError("%s: refusing an absolute or empty member name %r" % (what, name))
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or "/../" in "/" + name + "/":
        raise IntegrityError("%s: refusing member name %r: it climbs out with '..'" % (what, name))
    return norm


def _under(name: str, roots: list) -> bool:
    return any(r == "." or name == r or name.startswith(r + "/") for r in roots)


def _link_above(name: str, symlinks: set, *, inclusive: bool = False) -> str | None:
    """The symlink ``name`` lies below (or, ``inclusive``, is), or None."""
    parts = name.split("/")
    for depth in range(1, len(parts) + (1 if inclusive else 0)):
        if "/".join(parts[:depth]) in symlinks:
            return "/".join(parts[:depth])
    return None


def _check_rename(source: str, dest: str, *, roots: list, symlinks: set, what: str) -> None:
    """A dumpdir rename record moves ``source`` to ``dest`` at extraction: both must lie inside
    the backed-up paths and neither may be or lie below a symlink (tar's rename follows it)."""
    for name in (source, dest):
        if not _under(name, roots):
            raise IntegrityError("%s: a directory rename record names %r, outside the backed-up paths" % (what, name))
        link = _link_above(name, symlinks, inclusive=True)
        if link is not None:
            raise IntegrityError("%s: a directory rename record names %r, which is or lies below the symlink %r: "
                                 "refusing an archive that moves files through a link" % (what, name, link))


def check_listing(path: str, *, roots: list, symlinks: set, what: str) -> Listing:
    """Read the archive at ``path`` (headers only) and refuse it before extraction when it holds
    anything a backup of ``roots`` (member names, relative) cannot. ``symlinks`` carries the
    symlinks of earlier archives of the chain (updated in place): each archive of a chain is
    extracted by its own tar run into the same directory, so a symlink an earlier one made is a
    real symlink there, and tar follows it in the parents of a member, of a hard link's target
    and of a rename record's names. A hard link to a symlink is a symlink."""
    listing = Listing()
    try:
        with tarfile.open(path, mode="r:") as archive:
            for member in archive:
                name = _clean(member.name, what)
                if not _under(name, roots):
                    raise IntegrityError("%s: member %r lies outside the backed-up paths %s"
                                         % (what, name, ", ".join("/" + r for r in roots)))
                link = _link_above(name, symlinks)
                if link is not None:
                    raise IntegrityError("%s: member %r lies below the symlink %r: refusing an "
                                         "archive that writes through a link" % (what, name, link))
                if member.ischr() or member.isblk():
                    raise IntegrityError("%s: refusing device node %r" % (what, name))
                is_link = member.issym()
                if member.islnk():
                    target = _clean(member.linkname, what)
                    if not _under(target, roots):
                        raise IntegrityError("%s: hard link %r points outside the backed-up paths (%r)"
                                             % (what, name, member.linkname))
                    link = _link_above(target, symlinks)
                    if link is not None:
                        raise IntegrityError("%s: hard link %r points to %r, below the symlink %r: refusing an "
                                             "archive that links through a link" % (what, name, target, link))
                    is_link = target in symlinks
                if is_link:
                    symlinks.add(name)
                else:
                    symlinks.discard(name)
                dumpdir = member.pax_headers.get("GNU.dumpdir")
                if dumpdir is not None:
                    first = len(listing.renames)
                    listing.dumpdirs[name] = _dumpdir_names(dumpdir, name, what, listing.renames)
                    for source, dest in listing.renames[first:]:
                        _check_rename(source, dest, roots=roots, symlinks=symlinks, what=what)
                        moved = {n for n in symlinks if n.startswith(source + "/")}
                        symlinks.difference_update(moved)
                        symlinks.update(dest + n[len(source):] for n in moved)
                listing.names[name] = member.type
                listing.members += 1
                if member.isreg():
                    listing.bytes += member.size
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError("%s is not a readable tar archive: %s" % (what, exc)) from None
    except OSError as exc:
        raise IntegrityError("cannot read %s: %s" % (what, exc.strerror)) from None
    for source, dest in listing.renames:  # again against every symlink the archive holds
        _check_rename(source, dest, roots=roots, symlinks=symlinks, what=what)
    return listing


def _dumpdir_names(text: str, directory: str, what: str, renames: list) -> set:
    """Entry names of a GNU dumpdir ('Yname', 'Nname', 'Dname'); its directory rename records
    ('R'from, 'T'to) must stay inside the tree, as member names do, and go to ``renames``."""
    names = set()
    source = None
    for entry in text.split("\x00"):
        if not entry:
            continue
        flag, name = entry[0], entry[1:]
        if flag in "YND":
            if "/" in name or name in ("", ".", ".."):
                raise IntegrityError("%s: directory %r lists an unsafe entry %r" % (what, directory, name))
            names.add(name)
        elif flag == "R":
            source = _clean(name, what) if name else None
        elif flag == "T":
            if source is not None and name:
                renames.append((source, _clean(name, what)))
            source = None
        elif flag == "X":
            if name:
                _clean(name, what)
        else:
            raise IntegrityError("%s: directory %r has an unknown dumpdir record %r" % (what, directory, entry[:1]))
    return names


def apply_listing(tree: set, listing: Listing) -> None:
    """What extracting ``listing`` with --listed-incremental does to the set of names ``tree``:
    entries a directory's dumpdir no longer lists are removed (with what lies below them), then
    every member is added; directory renames move what lies below them. The restore compares
    the staged tree with this model."""
    for source, dest in listing.renames:
        moved = [n for n in tree if n == source or n.startswith(source + "/")]
        tree.difference_update(moved)
        tree.update(dest + n[len(source):] for n in moved)
    for directory, keep in listing.dumpdirs.items():
        prefix = "" if directory == "." else directory + "/"
        gone = [n for n in tree if n.startswith(prefix) and n[len(prefix):].split("/")[0] not in keep]
        tree.difference_update(gone)
    tree.update(listing.names)


def walk_symlinks(top: str, base: str) -> set:
    """Symlinks below the staged ``top``, as members would name them (``base``/...): what a
    chain's earlier archives really made, whatever the listings said."""
    links = set()
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        prefix = base if rel == "." else posixpath.join(base, rel)
        links.update(posixpath.join(prefix, n) for n in dirnames + filenames
                     if os.path.islink(os.path.join(dirpath, n)))
    return links


def walk_names(top: str, base: str) -> set:
    """Names below (and including) the staged ``top``, as members would name them (``base``/...)."""
    names = {base}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        prefix = base if rel == "." else posixpath.join(base, rel)
        names.update(posixpath.join(prefix, n) for n in dirnames + filenames)
    return names
