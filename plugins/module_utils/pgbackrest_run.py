# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run pgBackRest as the postgres user with Lifeline's config file, and turn its failures into
typed errors that name the cause and the fix.

Everything pgBackRest prints about a repository is read back from that repository: it is hostile
input. A wrong passphrase makes pgBackRest quote decrypted garbage; ``clean`` keeps messages to
printable text of bounded length.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

from ansible_collections.lifeline.dr.plugins.module_utils.errors import (
    ConfigError,
    DecryptionError,
    DependencyError,
    LifelineError,
    NotFoundError,
    RepositoryError,
    SourceError,
)
from ansible_collections.lifeline.dr.plugins.module_utils.run_as import as_user

_UNPRINTABLE = re.compile(r"[^\x20-\x7e\n]+")


def clean(text: str, limit: int = 600) -> str:
    """Printable ASCII only, at most ``limit`` characters from the end."""
    text = _UNPRINTABLE.sub("?", text or "").strip()
    return text[-limit:]


#: pgBackRest's repository status codes that are no error: 0 ok, 2 no valid backups (yet)
_STATUS_OK = (0, 2, None)


class SystemIdMismatch(ConfigError):
    """The repository's stanza belongs to another cluster (another system identifier)."""


def classify(message: str, *, what: str) -> LifelineError:
    """The typed error for a pgBackRest failure message (from stderr or info's repo status)."""
    text = clean(message)
    low = text.lower()
    if "formaterror" in low or "cryptoerror" in low or "unable to flush" in low and "cipher" in low:
        return DecryptionError(
            "%s: the repository cannot be decrypted: wrong pgBackRest cipher passphrase "
            "(lifeline_postgresql_pitr_cipher_pass must be the one the stanza was created with), "
            "or the repository's files were altered. pgBackRest said: %s" % (what, text[:200]))
    if "system-id" in low or "database system identifier" in low or "do not match the database" in low:
        return SystemIdMismatch(
            "%s: the repository's stanza belongs to another PostgreSQL cluster (system identifier "
            "mismatch): a restored or re-initialised cluster must archive under its own host name "
            "(lifeline host) or a new stanza; never into the source's. pgBackRest said: %s" % (what, text))
    if ("missing stanza path" in low or "missing stanza data" in low or "has a stanza-create been performed" in low
            or "does not exist" in low and "stanza" in low):
        return NotFoundError("%s: the stanza does not exist in the repository: run the PITR setup "
                             "(postgres_pitr action=configure) on the source host first. "
                             "pgBackRest said: %s" % (what, text))
    if any(s in low for s in ("hosterror", "unable to get address", "connection refused", "timeout",
                              "tls", "s3 request failed", "unable to open", "permission denied",
                              "unable to list", "access denied", "accessdenied")):
        return RepositoryError("%s: a pgBackRest repository is not reachable: %s. Check "
                               "lifeline_repositories (path permissions for the postgres user, S3 "
                               "endpoint, credentials, TLS)." % (what, text))
    return SourceError("%s failed: %s" % (what, text))


class Pgbackrest:
    """One config file and stanza; every command runs as ``user`` (when we are root)."""

    def __init__(self, config: str, stanza: str, *, user: str | None = "postgres",
                 exe: str | None = None, timeout: int = 3600) -> None:
        self.config = config
        self.stanza = stanza
        self.user = user if os.geteuid() == 0 else None
        self.exe = exe or shutil.which("pgbackrest") or "/usr/bin/pgbackrest"
        self.timeout = timeout

    def argv(self, command: str, *args: str, positional: tuple = ()) -> list:
        return [self.exe, "--config=" + self.config, "--stanza=" + self.stanza, *args, command, *positional]

    def run(self, command: str, *args: str, what: str | None = None, positional: tuple = ()) -> str:
        """stdout of ``pgbackrest <args> <command> <positional>``; a typed error when it fails."""
        what = what or "pgbackrest " + command
        if not os.path.exists(self.exe):
            raise DependencyError("pgbackrest is not installed (%s missing): install the Debian "
                                  "package pgbackrest" % self.exe)
        try:
            proc = subprocess.run(self.argv(command, *args, positional=positional), capture_output=True, text=True,
                                  errors="replace", timeout=self.timeout, check=False,
                                  cwd="/", env=_env(), **as_user(self.user))
        except subprocess.TimeoutExpired:
            raise RepositoryError("%s did not finish in %ds: a repository hangs or the backup is too "
                                  "large for the timeout" % (what, self.timeout)) from None
        except OSError as exc:
            raise DependencyError("cannot run pgbackrest as %s: %s" % (self.user, exc)) from None
        if proc.returncode != 0:
            raise classify(proc.stderr or proc.stdout, what=what)
        return proc.stdout

    def info(self) -> dict:
        """The stanza's entry of ``info --output=json``; a repository in error raises."""
        out = self.run("info", "--output=json", what="pgbackrest info")
        try:
            data = json.loads(out, strict=False)  # a wrong passphrase quotes binary garbage
        except ValueError:
            raise classify(out, what="pgbackrest info (unreadable output)") from None
        if not isinstance(data, list):
            raise SourceError("pgbackrest info printed unexpected JSON: %s" % clean(out, 200))
        entry = next((s for s in data if isinstance(s, dict) and s.get("name") == self.stanza), None)
        if entry is None:
            raise NotFoundError("pgbackrest info does not list stanza %r" % self.stanza)
        repos = [r for r in entry.get("repo") or [] if isinstance(r, dict)]
        errors = [classify(str((r.get("status") or {}).get("message")), what="repo%s" % r.get("key"))
                  for r in repos if (r.get("status") or {}).get("code") not in _STATUS_OK]
        if errors and len(errors) == len(repos):
            raise errors[0]
        # some repositories answer: the window comes from those, the rest is reported
        entry["lifeline_repo_errors"] = [str(e) for e in errors]
        return entry


def _env() -> dict:
    """A minimal environment: no inherited PGBACKREST_* option overrides the config file."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    return {k: v for k, v in os.environ.items() if k in keep}
