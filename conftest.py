"""Tests import the engine exactly as Ansible and the host CLI do: as ansible_collections.lifeline.dr."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests", "lib"))
from collection import ensure_importable  # noqa: E402  pylint: disable=wrong-import-position

ensure_importable()

# pylint: disable=wrong-import-position,wrong-import-order
import uuid  # noqa: E402

import pytest  # noqa: E402
from services import Moto  # noqa: E402


@pytest.fixture(scope="session")
def moto_server():
    """A real S3 HTTP endpoint (moto_server) on loopback for the whole session."""
    with Moto() as server:
        yield server


@pytest.fixture
def s3_bucket(moto_server) -> str:  # pylint: disable=redefined-outer-name
    """A new, empty bucket on the session's moto server (tests never share objects)."""
    name = "lifeline-test-" + uuid.uuid4().hex[:12]
    moto_server.create_bucket(name)
    return name
