"""Make this checkout importable as ansible_collections.lifeline.dr (tests import the engine
exactly as Ansible and the host CLI do)."""
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS = os.path.join(ROOT, ".state", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "lifeline", "dr")
if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
