"""Tests import the engine exactly as Ansible and the host CLI do: as ansible_collections.lifeline.dr."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests", "lib"))
from collection import ensure_importable  # noqa: E402  pylint: disable=wrong-import-position

ensure_importable()
