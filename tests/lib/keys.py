"""One manifest signing key per test session, and trust in it for the host names tests use.

Tests that prove signature checking (tests/unit/plugins/module_utils/test_signing.py,
tests/integration/test_hostile_repository.py) make their own, other keys.
"""
from __future__ import annotations

from ansible_collections.lifeline.dr.plugins.module_utils.signing import (
    Signer,
    TrustStore,
    generate_signing_key,
)

PRIVATE_PEM, PUBLIC_PEM = generate_signing_key()
SIGNER = Signer(PRIVATE_PEM)
#: every host name the tests back up under
TEST_HOSTS = ("src", "db", "db1", "db2", "db10", "target-host", "other", "bench", "source-db",
              "restored-db", "h1", "h2")


def trusted_signers(*hosts: str) -> dict:
    return {host: [PUBLIC_PEM] for host in (hosts or TEST_HOSTS)}


def trust(*hosts: str, allow_unsigned: bool = False) -> TrustStore:
    return TrustStore(trusted_signers(*hosts), allow_unsigned=allow_unsigned)


def signing_params() -> dict:
    """The module options that sign new backups and trust them."""
    return {"signing_key": PRIVATE_PEM, "trusted_signers": trusted_signers()}
