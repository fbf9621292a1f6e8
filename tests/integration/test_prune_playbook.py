# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/prune.yml on the local default: check mode prints the plan and deletes nothing; the
real run deletes exactly what the plan named. Backups are seeded signed by the local site's own
key (services.json), at chosen days, so retention has something to decide."""
from __future__ import annotations

import datetime
import os

from lifeline_it import ansible_playbook
from test_playbooks import local_site

from ansible_collections.lifeline.dr.plugins.module_utils.manifest import MANIFEST_NAME, Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository
from ansible_collections.lifeline.dr.plugins.module_utils.signing import Signer


def _seed(state: str, days_ago: int) -> str:
    with open(os.path.join(state, "signing_key.pem"), encoding="utf-8") as fh:
        signer = Signer(fh.read())
    when = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)).replace(microsecond=0)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    m = Manifest(backup_id=when.strftime("%Y%m%dT%H%M%SZ") + "-%04x" % days_ago, site="local", host="source-db",
                 component="files", kind="full", started=stamp, finished=stamp, consistent_at=stamp,
                 compression="zstd", encryption="none", key_id=[],
                 artifacts=[Artifact(name="files.tar.zst", kind="tar", size=4096, sha256="0" * 64, plain_size=4096)])
    repo = LocalRepository("local", os.path.join(state, "repo"))
    repo.put_bytes(m.prefix + "files.tar.zst", os.urandom(4096))
    repo.put_bytes(m.prefix + MANIFEST_NAME, m.to_json(signer))
    return os.path.join(state, "repo", m.prefix)


def test_prune_playbook_check_mode_plans_and_the_real_run_deletes_the_plan(workdir):
    with local_site(workdir) as site:
        dirs = [_seed(site["state"], d) for d in (0, 1, 2, 3)]
        args = ("-e", "lifeline_prune_keep_daily=2", "-e", "lifeline_prune_keep_weekly=0",
                "-e", "lifeline_prune_keep_monthly=0", "-e", '{"lifeline_prune_components": ["files"]}')
        check = ansible_playbook("prune.yml", "--check", *args, env_extra=site["env"])
        assert check.returncode == 0, check.stdout
        out = " ".join(check.stdout.split())  # the callback wraps long messages
        assert "source-db (check mode): 2 backup(s) and 0 leftover(s) would be deleted, 8192 bytes freed" in out
        assert "beyond the retention policy" in out and "newest restorable backup" in out
        assert all(os.path.exists(os.path.join(d, MANIFEST_NAME)) for d in dirs)  # a dry run

        real = ansible_playbook("prune.yml", *args, env_extra=site["env"])
        assert real.returncode == 0, real.stdout
        assert "source-db: 2 backup(s) and 0 leftover(s) were deleted, 8192 bytes freed" in " ".join(real.stdout.split())
        assert [os.path.exists(d) for d in dirs] == [True, True, False, False]
