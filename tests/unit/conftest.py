# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the unit tests: one moto S3 server per session (a real HTTP endpoint on
loopback, stopped at the end), a fresh bucket per test, and an environment in which a child
Python process imports the collection exactly as this one does."""
from __future__ import annotations

import os
import sys

import pytest

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.join(_TESTS, "lib") not in sys.path:
    sys.path.insert(0, os.path.join(_TESTS, "lib"))

from services import free_port  # noqa: E402  pylint: disable=wrong-import-position

import ansible_collections.lifeline.dr as _collection  # noqa: E402  pylint: disable=wrong-import-position

#: the directory that holds ansible_collections/ (what the root conftest puts on sys.path)
COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(list(_collection.__path__)[0])))


@pytest.fixture
def unreachable_endpoint() -> str:
    """A loopback URL on a port nobody listens on: connections are refused at once."""
    return "http://127.0.0.1:%d" % free_port()


@pytest.fixture
def child_env() -> dict:
    """Environment for a `python -c ...` child that imports ansible_collections.lifeline.dr."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (COLLECTIONS_PATH, env.get("PYTHONPATH")) if p)
    return env
