"""Compare pg_dumpall of the local demo's source and restored servers; exit 1 if they differ."""
from __future__ import annotations

import difflib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from services import dumpall_normalized  # noqa: E402

state = os.environ.get("LIFELINE_LOCAL_STATE") or os.path.join(ROOT, ".state", "local")
with open(os.path.join(state, "services.json"), encoding="utf-8") as fh:
    info = json.load(fh)
source = dumpall_normalized("127.0.0.1", info["source_port"], "postgres", info["postgres_password"])
restored = dumpall_normalized("127.0.0.1", info["target_port"], "postgres", info["postgres_password"])
if source != restored:
    sys.stdout.writelines(list(difflib.unified_diff(source, restored, "source", "restored"))[:80])
    sys.exit("source and restored clusters DIFFER (pg_dumpall)")
print("source and restored clusters match: pg_dumpall, %d lines, identical" % len(source))
