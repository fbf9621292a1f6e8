# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rsync method to an SSH target, against a real sshd (Debian's openssh-server) that the test
starts on a free loopback port with throwaway host and user keys and stops afterwards: backups
land on the target as hard-link snapshots, restore copies them back over SSH and checks every
entry against the signed file tree (built from the sources, proven equal to the remote snapshot by
a dry-run checksum compare), a snapshot tampered with on the target is refused, a source changed
between the copy and the compare fails the backup naming it, and a host key that does not match
what rsync_ssh_config trusts fails the backup (StrictHostKeyChecking)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from services import free_port
from test_files_roundtrip import backup, restore, snapshot, tree  # noqa: F401  pylint: disable=unused-import
from test_files_rsync import _seconds_for_links, _swap_for_setuid_binary

from ansible_collections.lifeline.dr.plugins.module_utils.backup import Status
from ansible_collections.lifeline.dr.plugins.module_utils import files_rsync
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError, NotFoundError, SourceError

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not os.path.exists(SSHD), reason="openssh-server not installed "
                                "(scripts/install-deps.sh installs it)")
PRIVSEP = "/run/sshd"   # Debian's sshd refuses to start without its privilege separation directory


def _keygen(path: str) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    with open(path + ".pub", encoding="ascii") as fh:
        return fh.read().strip()


@pytest.fixture
def sshd(tmp_path):
    """A throwaway sshd on 127.0.0.1:<free port> that lets this user in with a throwaway key only;
    yields the client's ssh_config (port, key, known host key, StrictHostKeyChecking yes)."""
    work = tmp_path / "ssh"
    work.mkdir(mode=0o700)
    host_pub = _keygen(str(work / "host_key"))
    _keygen(str(work / "client_key"))
    shutil.copy(work / "client_key.pub", work / "authorized_keys")
    port = free_port()
    (work / "sshd_config").write_text(
        "Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_key\nAuthorizedKeysFile %s/authorized_keys\n"
        "PidFile %s/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\n" % (port, work, work, work))
    (work / "known_hosts").write_text("[127.0.0.1]:%d %s\n" % (port, " ".join(host_pub.split()[:2])))
    (work / "ssh_config").write_text(
        "Host 127.0.0.1\n  Port %d\n  IdentityFile %s/client_key\n  IdentitiesOnly yes\n"
        "  UserKnownHostsFile %s/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n" % (port, work, work))
    made_privsep = not os.path.isdir(PRIVSEP)
    if made_privsep:
        os.makedirs(PRIVSEP, mode=0o755)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(work / "sshd_config")],  # pylint: disable=consider-using-with
                            stderr=open(work / "sshd.log", "wb"))  # pylint: disable=consider-using-with
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["ssh", "-F", str(work / "ssh_config"), "127.0.0.1", "true"],
                             capture_output=True, check=False).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (work / "sshd.log").read_text()
            time.sleep(0.1)
        yield {"config": str(work / "ssh_config"), "dir": str(work), "port": port}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if made_privsep:
            os.rmdir(PRIVSEP)


def test_rsync_to_an_ssh_target_snapshots_hard_links_and_restores_over_ssh(files_params, tree, tmp_path, sshd):  # noqa: F811
    remote_dir = str(tmp_path / "remote")
    params = dict(files_params, paths=[tree], method="rsync", rsync_target="127.0.0.1:" + remote_dir,
                  rsync_ssh_config=sshd["config"])
    before = snapshot(tree)
    first, second = backup(params), backup(params)
    for outcome in (first, second):
        assert outcome.status is Status.OK and outcome.manifest.facts["location"].startswith("127.0.0.1:" + remote_dir)
    # The target is this machine: its files can be looked at directly.
    loc1, loc2 = (o.manifest.facts["location"].split(":", 1)[1] for o in (first, second))
    assert second.manifest.facts["link_dest"] == first.manifest.facts["location"]
    assert os.stat(loc1 + tree + "/sub/deep.bin").st_ino == os.stat(loc2 + tree + "/sub/deep.bin").st_ino
    root = str(tmp_path / "restored")
    report = restore(params, root=root)
    assert report["verified"] and "each as the signed file tree records" in report["checks"][0]
    assert _seconds_for_links(snapshot(root + tree)) == _seconds_for_links(before)


def _ssh_params(files_params, tree, tmp_path, sshd):  # noqa: F811
    return dict(files_params, paths=[tree], method="rsync", rsync_target="127.0.0.1:" + str(tmp_path / "remote"),
                rsync_ssh_config=sshd["config"])


def test_a_snapshot_tampered_with_on_the_ssh_target_is_refused_and_nothing_placed(files_params, tree, tmp_path, sshd):  # noqa: F811
    params = _ssh_params(files_params, tree, tmp_path, sshd)
    outcome = backup(params)
    assert [a.kind for a in outcome.manifest.artifacts] == ["rsync-log", "rsync-tree"]
    _swap_for_setuid_binary(outcome.manifest.facts["location"].split(":", 1)[1] + tree + "/plain.txt")  # same count
    root = tmp_path / "r"
    with pytest.raises(IntegrityError, match="/plain.txt differs \\(content, group, mode, owner, size\\)"):
        restore(params, root=str(root))
    assert not os.path.exists(str(root) + tree)


@pytest.mark.parametrize("when", ["before-hashing", "after-hashing"])
def test_a_source_changed_between_copy_and_compare_fails_the_backup_naming_it(files_params, tree, tmp_path, sshd,  # noqa: F811
                                                                               monkeypatch, when):
    """The change is injected deterministically around the hashing of the sources (after rsync's
    copy, before its dry-run compare): either way the compare names the file."""
    params = _ssh_params(files_params, tree, tmp_path, sshd)
    real = files_rsync.write_tree

    def rewrite():
        with open(tree + "/plain.txt", "a", encoding="utf-8") as fh:
            fh.write("changed during the backup\n")

    def racing_write_tree(*args):
        if when == "before-hashing":
            rewrite()
        count = real(*args)
        if when == "after-hashing":
            rewrite()
        return count

    monkeypatch.setattr(files_rsync, "write_tree", racing_write_tree)
    # plain.txt and its hard link hardlink.txt are one file: both are named.
    with pytest.raises(SourceError, match="2 paths changed while they were copied .*e.g. {0}/hardlink.txt, {0}/plain.txt"
                       "\\); .*nothing was committed".format(tree)):
        backup(params)
    monkeypatch.setattr(files_rsync, "write_tree", real)
    again = backup(params)   # nothing was committed: no snapshot to hard-link to, and this one verifies
    assert again.manifest.facts["link_dest"] is None
    assert restore(params, root=str(tmp_path / "r"))["verified"]


def test_an_ssh_target_whose_host_key_is_not_trusted_fails_and_commits_nothing(files_params, tree, tmp_path, sshd):  # noqa: F811
    other = _keygen(str(tmp_path / "other_host_key"))
    with open(os.path.join(sshd["dir"], "known_hosts"), "w", encoding="ascii") as fh:
        fh.write("[127.0.0.1]:%d %s\n" % (sshd["port"], " ".join(other.split()[:2])))
    params = dict(files_params, paths=[tree], method="rsync", rsync_target="127.0.0.1:" + str(tmp_path / "remote"),
                  rsync_ssh_config=sshd["config"])
    with pytest.raises(SourceError, match="(?s)rsync of .* failed.*Host key verification failed"):
        backup(params)
    assert not os.path.exists(tmp_path / "remote")
    params.update(rsync_target="127.0.0.1:" + str(tmp_path / "remote"))
    with pytest.raises(NotFoundError):
        restore(params, root=str(tmp_path / "r"))   # and no backup was committed to restore


def test_rsync_ssh_config_must_be_a_plain_absolute_path(files_params, tree):  # noqa: F811
    with pytest.raises(ConfigError, match="rsync_ssh_config"):
        backup(files_params, paths=[tree], method="rsync", rsync_target="127.0.0.1:/x", rsync_ssh_config="cfg -o x")
