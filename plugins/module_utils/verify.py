# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify a backup: re-read every copy of every artifact in every repository, check size, hash
and authentication tag, decrypt, decompress and hand the plaintext to a component's check.

Results are stored as separate objects (``<backup>/verify/<time>.json``): manifests stay immutable.
"""
from __future__ import annotations

import json
from typing import Callable

from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Entry
from ansible_collections.lifeline.dr.plugins.module_utils.errors import LifelineError
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact
from ansible_collections.lifeline.dr.plugins.module_utils.timeutil import isotime, utcnow
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import Codec, Sink, fetch_artifact


class Check(Sink):
    """Consumes an artifact's plaintext; ``close()`` returns a detail or raises IntegrityError.

    ``abort()`` releases whatever the check holds (a child process, temp files); verify calls it
    on every outcome, after ``close()`` too, so it must be idempotent.
    """

    def write(self, data: bytes) -> None:
        pass

    def reset(self) -> None:
        pass

    def close(self) -> str:
        return ""

    def abort(self) -> None:
        pass


def verify_backup(entry: Entry, codec: Codec, *, check_for: Callable[[Artifact], Check],
                  record: bool = True) -> dict:
    manifest = entry.manifest
    results = []
    for art in manifest.artifacts:
        for repo in entry.repositories:
            check = check_for(art)
            try:
                fetch_artifact(manifest, art, [repo], codec, check)
                detail = check.close()
                results.append({"artifact": art.name, "repository": repo.name, "ok": True, "detail": detail})
            except LifelineError as exc:
                results.append({"artifact": art.name, "repository": repo.name, "ok": False,
                                "error": "%s: %s" % (type(exc).__name__, exc)})
            finally:
                check.abort()
    report = {"backup_id": manifest.backup_id, "verified_at": isotime(utcnow()),
              "ok": all(r["ok"] for r in results), "results": results,
              "repositories": [r.name for r in entry.repositories]}
    report["recorded_in"] = []
    if record:
        key = manifest.prefix + "verify/%s.json" % report["verified_at"].replace(":", "")
        raw = json.dumps(report, indent=2, sort_keys=True).encode()
        for repo in entry.repositories:
            try:
                repo.put_bytes(key, raw)
                report["recorded_in"].append(repo.name)
            except LifelineError:
                pass  # a repository that cannot take the record already shows up in the results
    return report
