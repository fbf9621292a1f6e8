# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One error tree for the engine.

The engine raises these; only a module's main() or the host CLI turns them into fail_json or
an exit code. Every message names the cause and, where one exists, the fix. Messages never carry
key material or passwords.
"""
from __future__ import annotations


class LifelineError(Exception):
    """Base of every error the engine raises on purpose."""

    #: exit code of the host CLI for this kind of error; 0 ok, 1 partial and 2 usage are the
    #: CLI's own (docs/operations.md lists them all). 70 (EX_SOFTWARE) for anything unclassified.
    exit_code = 70

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(LifelineError):
    """The caller's settings are wrong or incomplete (a missing key, a bad repository spec)."""

    exit_code = 3


class DependencyError(LifelineError):
    """A Python library or command the operation needs is not installed on this host."""

    exit_code = 4


class RepositoryError(LifelineError):
    """A repository could not be read or written (unreachable S3, denied access, full disk)."""

    exit_code = 5


class NotFoundError(RepositoryError):
    """The object, backup or database asked for does not exist."""

    exit_code = 6


class IntegrityError(LifelineError):
    """Stored data does not match what its manifest promises (size, hash, truncation)."""

    exit_code = 7


class UntrustedError(IntegrityError):
    """A manifest is unsigned, or its signature does not verify with a key trusted for its host."""

    exit_code = 12


class DecryptionError(IntegrityError):
    """An artifact cannot be decrypted: wrong or missing key, or the ciphertext was altered."""

    exit_code = 8


class LockedError(LifelineError):
    """Another run holds the lock for this host and component."""

    exit_code = 9


class SourceError(LifelineError):
    """The data source failed: the dump tool exited non-zero, the database is unreachable or missing."""

    exit_code = 10


class RestoreError(LifelineError):
    """A restore could not complete or did not verify; the existing data was left untouched."""

    exit_code = 11
