# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hostile artifact that decompresses to gigabytes (anyone who can write to the repository
can make one: age recipients are public) goes through the restore's fetch path with bounded
memory. Measured in a fresh process, whose peak RSS holds nothing of other tests."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.lifeline.dr.plugins.module_utils.compress import MAX_PIECE
from ansible_collections.lifeline.dr.plugins.module_utils.crypto import generate_age_identity
from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Artifact, Manifest
from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import (
    Codec,
    aad_for,
    store_stream,
)
from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository

MIB = 1024 * 1024
GIB = 1024 * MIB
IDENTITY, RECIPIENT = generate_age_identity()


class Zeros:
    """A source of ``total`` zero bytes that never holds more than one read's worth."""

    def __init__(self, total: int) -> None:
        self.left = total

    def read(self, size: int) -> bytes:
        size = min(size, self.left)
        self.left -= size
        return bytes(size)


def store_zeros(root: str, name: str, total: int, compression: str) -> int:
    """Store ``total`` zeros as an age artifact with a manifest that vouches for it, as an
    attacker with write access and the public recipient can; return the stored size."""
    backup_id = "20261123T020000Z-%04x" % total.bit_length()
    codec = Codec(compression=compression, encryption="age", recipients=[RECIPIENT])
    artifact = "%s.dump%s" % (name, codec.suffix)
    manifest = Manifest(backup_id=backup_id, site="fra", host="db1", component="postgres",
                        kind="full", started="2026-11-23T02:00:00Z",
                        finished="2026-11-23T02:05:00Z", consistent_at="2026-11-23T02:00:00Z",
                        compression=compression, encryption="age", key_id=[RECIPIENT],
                        artifacts=[])
    writer = LocalRepository("local", root + "/repo").open_writer(manifest.prefix + artifact)
    result = store_stream(Zeros(total), [writer], codec, aad=aad_for(backup_id, artifact))
    assert writer.commit() == result.size
    manifest.artifacts = [Artifact(name=artifact, kind="database", size=result.size,
                                   sha256=result.sha256, plain_size=total)]
    with open("%s/%s.json" % (root, name), "wb") as fh:
        fh.write(manifest.to_json())
    return result.size


MEASURE = textwrap.dedent("""
    import json, resource, sys
    from ansible_collections.lifeline.dr.plugins.module_utils.manifest import Manifest
    from ansible_collections.lifeline.dr.plugins.module_utils.pipeline import (
        Codec, Sink, fetch_artifact)
    from ansible_collections.lifeline.dr.plugins.module_utils.repository import LocalRepository

    class Counter(Sink):
        '''Discards the plaintext, as a restore's staging file does not keep it in memory.'''
        def __init__(self):
            self.total = self.biggest = 0
        def write(self, data):
            self.total += len(data)
            self.biggest = max(self.biggest, len(data))
        def reset(self):
            self.total = 0

    root, identity = sys.argv[1], sys.stdin.read()

    def fetch(name):
        with open("%s/%s.json" % (root, name), "rb") as fh:
            manifest = Manifest.from_json(fh.read())
        sink = Counter()
        fetch_artifact(manifest, manifest.artifacts[0], [LocalRepository("local", root + "/repo")],
                       Codec(identities=[identity]), sink)
        return sink

    fetch("warmup")  # imports, cipher and decompression contexts
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sink = fetch("bomb")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kib": after - before, "total": sink.total, "biggest": sink.biggest}))
""")


@pytest.mark.parametrize("compression, total", [("zstd", 2 * GIB), ("gzip", GIB // 2)])
def test_a_decompression_bomb_restores_with_bounded_memory(tmp_path, child_env, compression,
                                                           total):
    root = str(tmp_path)
    store_zeros(root, "warmup", 4 * MIB, compression)
    stored = store_zeros(root, "bomb", total, compression)
    # zstd: 2 GiB in ~64 KiB, one read of the fetch loop; gzip: 512 MiB in ~0.5 MiB.
    assert stored < total // 1000
    out = subprocess.run([sys.executable, "-c", MEASURE, root], input=IDENTITY, env=child_env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["total"] == total  # all of it really came out
    assert report["biggest"] <= MAX_PIECE
    # Measured: no growth above the warm-up's peak. Before the output was bounded: 1.7 GiB
    # (zstd) and 0.9 GiB (gzip), as one read's whole expansion was held at once.
    assert report["growth_kib"] < 32 * 1024, report
