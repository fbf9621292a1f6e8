"""Make a checkout importable as ansible_collections.lifeline.dr, as Ansible and the host CLI
import it: a symlink .state/collections/ansible_collections/lifeline/dr -> the checkout."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".state", "collections")


def ensure_importable() -> str:
    link = os.path.join(COLLECTIONS, "ansible_collections", "lifeline", "dr")
    if os.path.realpath(link) != ROOT:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(ROOT, link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    return COLLECTIONS


if __name__ == "__main__":
    print("lifeline.dr importable from", ensure_importable())
