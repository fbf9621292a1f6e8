# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""files_tar: what tar's messages mean, and the listing check that stands between a hostile
archive and tar -x. Archives are built with Python's tarfile (what an attacker would use)."""
from __future__ import annotations

import io
import tarfile

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils import files_tar
from ansible_collections.lifeline.dr.plugins.module_utils.errors import IntegrityError


def _archive(tmp_path, members, name="a.tar") -> str:
    path = str(tmp_path / name)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as out:
        for spec in members:
            info = tarfile.TarInfo(spec["name"])
            info.type = spec.get("type", tarfile.REGTYPE)
            info.linkname = spec.get("link", "")
            info.pax_headers = spec.get("pax", {})
            data = spec.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            out.addfile(info, io.BytesIO(data))
    return path


def test_skipped_paths_names_each_unreadable_path_and_keeps_unknown_lines_apart():
    stderr = ("tar: srv/a/log: file changed as we read it\n"
              "tar: srv/a/gone: File removed before we read it\n"
              "tar: srv/a/secret: Cannot open: Permission denied\n"
              "tar: srv/a/sock: socket ignored\n"
              "tar: Exiting with failure status due to previous errors\n"
              "tar: something else entirely\n")
    skipped, other = files_tar.skipped_paths(stderr)
    assert skipped == {"/srv/a/log": "file changed as we read it", "/srv/a/gone": "File removed before we read it",
                       "/srv/a/secret": "Cannot open: Permission denied"}
    assert other == ["tar: something else entirely"]


def test_index_counts_members_and_regular_file_bytes_only():
    index = ("drwxr-xr-x  root/root         0 2026-11-23 22:58 srv/\n"
             "-rw-r--r--  root/root        10 2026-11-23 22:58 srv/a\n"
             "hrw-r--r--  root/root         0 2026-11-23 22:58 srv/b link to srv/a\n"
             "lrwxrwxrwx  root/root         0 2026-11-23 22:58 srv/c -> a\n")
    assert files_tar.index_counts(index) == {"members": 4, "bytes": 10}


def test_check_listing_counts_a_good_archive(tmp_path):
    path = _archive(tmp_path, [{"name": "srv/data", "type": tarfile.DIRTYPE, "pax": {"GNU.dumpdir": "Ya\x00Dsub\x00\x00"}},
                               {"name": "srv/data/a", "data": b"12345"},
                               {"name": "srv/data/l", "type": tarfile.SYMTYPE, "link": "/etc/hostname"}])
    listing = files_tar.check_listing(path, roots=["srv/data"], symlinks=set(), what="test")
    assert (listing.members, listing.bytes) == (3, 5)
    assert listing.dumpdirs == {"srv/data": {"a", "sub"}}


@pytest.mark.parametrize("members, cause", [
    ([{"name": "srv/data/../../etc/x"}], "'\\.\\.'"),
    ([{"name": "/etc/x"}], "absolute"),
    ([{"name": "srv/other/x"}], "outside the backed-up paths"),
    ([{"name": "srv/data/h", "type": tarfile.LNKTYPE, "link": "etc/shadow"}], "hard link"),
    ([{"name": "srv/data/dev", "type": tarfile.BLKTYPE}], "device node"),
    ([{"name": "srv/data/l", "type": tarfile.SYMTYPE, "link": "/etc"}, {"name": "srv/data/l/x"}], "below the symlink"),
    ([{"name": "srv/data", "type": tarfile.DIRTYPE, "pax": {"GNU.dumpdir": "Y../x\x00\x00"}}], "unsafe entry"),
    ([{"name": "srv/data", "type": tarfile.DIRTYPE, "pax": {"GNU.dumpdir": "R../../etc\x00Tsrv/data/x\x00\x00"}}], "'\\.\\.'"),
])
def test_check_listing_refuses_hostile_members(tmp_path, members, cause):
    with pytest.raises(IntegrityError, match=cause):
        files_tar.check_listing(_archive(tmp_path, members), roots=["srv/data"], symlinks=set(), what="test")


def test_a_symlink_from_an_earlier_archive_of_the_chain_still_guards_the_next(tmp_path):
    links: set = set()
    files_tar.check_listing(_archive(tmp_path, [{"name": "srv/data/l", "type": tarfile.SYMTYPE, "link": "/etc"}], "1.tar"),
                            roots=["srv/data"], symlinks=links, what="full")
    with pytest.raises(IntegrityError, match="below the symlink"):
        files_tar.check_listing(_archive(tmp_path, [{"name": "srv/data/l/passwd"}], "2.tar"),
                                roots=["srv/data"], symlinks=links, what="incremental")


def test_check_listing_refuses_what_is_not_a_tar_archive(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x01" * 2048)
    with pytest.raises(IntegrityError, match="not a readable tar archive"):
        files_tar.check_listing(str(path), roots=["srv"], symlinks=set(), what="junk")


def test_apply_listing_deletes_what_a_dumpdir_no_longer_lists_and_follows_renames():
    tree = {"srv/d", "srv/d/a", "srv/d/old", "srv/d/old/x", "srv/d/sub", "srv/d/sub/y"}
    listing = files_tar.Listing(names={"srv/d": b"5", "srv/d/moved": b"5", "srv/d/new": b"0"},
                                dumpdirs={"srv/d": {"a", "moved", "new"}},
                                renames=[("srv/d/sub", "srv/d/moved")])
    files_tar.apply_listing(tree, listing)
    assert tree == {"srv/d", "srv/d/a", "srv/d/moved", "srv/d/moved/y", "srv/d/new"}


def _chain(tmp_path, *archives) -> None:
    """check_listing over the archives of one chain in order, as the restore does."""
    links: set = set()
    for number, members in enumerate(archives):
        files_tar.check_listing(_archive(tmp_path, members, "%d.tar" % number), roots=["srv/data"], symlinks=links,
                                what="link %d" % number)


LINK_OUT = {"name": "srv/data/l", "type": tarfile.SYMTYPE, "link": "/etc"}


def test_a_hard_link_to_an_earlier_symlink_is_a_symlink_members_may_not_pass(tmp_path):
    # link 2's h is a second name of link 1's symlink l -> /etc: h/planted would land in /etc
    with pytest.raises(IntegrityError, match="'srv/data/h/planted' lies below the symlink 'srv/data/h'"):
        _chain(tmp_path, [LINK_OUT], [{"name": "srv/data/h", "type": tarfile.LNKTYPE, "link": "srv/data/l"},
                                      {"name": "srv/data/h/planted", "data": b"x"}])


def test_a_hard_link_whose_target_lies_below_an_earlier_symlink_is_refused(tmp_path):
    # link(srv/data/l/shadow, srv/data/h) would make h the inode of /etc/shadow
    with pytest.raises(IntegrityError, match="hard link 'srv/data/h' points to 'srv/data/l/shadow', below the symlink"):
        _chain(tmp_path, [LINK_OUT], [{"name": "srv/data/h", "type": tarfile.LNKTYPE, "link": "srv/data/l/shadow"}])


@pytest.mark.parametrize("records", [
    "Rsrv/data/l/victim\x00Tsrv/data/stolen\x00",   # moves /etc/victim into the staging copy
    "Rsrv/data/d\x00Tsrv/data/l/d\x00",             # moves a staged directory into /etc
    "Rsrv/data/l\x00Tsrv/data/m\x00",               # a rename names the symlink itself
])
def test_a_dumpdir_rename_record_through_an_earlier_symlink_is_refused(tmp_path, records):
    with pytest.raises(IntegrityError, match="rename record names .* symlink 'srv/data/l'"):
        _chain(tmp_path, [LINK_OUT], [{"name": "srv/data", "type": tarfile.DIRTYPE,
                                       "pax": {"GNU.dumpdir": records + "Yl\x00Dm\x00"}}])


def test_a_dumpdir_rename_record_outside_the_backed_up_paths_is_refused(tmp_path):
    with pytest.raises(IntegrityError, match="rename record names 'srv/other', outside"):
        _chain(tmp_path, [{"name": "srv/data", "type": tarfile.DIRTYPE,
                           "pax": {"GNU.dumpdir": "Rsrv/other\x00Tsrv/data/x\x00Dx\x00"}}])


def test_a_hard_link_to_a_plain_file_and_a_rename_inside_the_tree_are_accepted(tmp_path):
    _chain(tmp_path, [LINK_OUT, {"name": "srv/data/a", "data": b"1"}, {"name": "srv/data/d", "type": tarfile.DIRTYPE}],
           [{"name": "srv/data", "type": tarfile.DIRTYPE, "pax": {"GNU.dumpdir": "Rsrv/data/d\x00Tsrv/data/e\x00Ya\x00De\x00"}},
            {"name": "srv/data/b", "type": tarfile.LNKTYPE, "link": "srv/data/a"}])


def test_walk_symlinks_names_the_staged_symlinks_as_members(tmp_path):
    (tmp_path / "srv" / "data" / "d").mkdir(parents=True)
    (tmp_path / "srv" / "data" / "d" / "l").symlink_to("/etc")
    (tmp_path / "srv" / "data" / "f").write_text("x")
    assert files_tar.walk_symlinks(str(tmp_path / "srv" / "data"), "srv/data") == {"srv/data/d/l"}
