# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest.conf as Lifeline writes it: repositories derived from ``lifeline_repositories``.

Each Lifeline repository becomes one pgBackRest repository: a ``path`` one keeps its stanza under
``<path>/pitr/<site>/<host>``, an ``s3`` one under ``/<prefix>/pitr/<site>/<host>`` of its bucket,
so hosts and sites never share a stanza. Every repository is encrypted (aes-256-cbc) with the
same passphrase, which PostgreSQL's ``archive_command`` needs at any moment: it is a symmetric
secret stored on the host, in this 0600 file owned by the postgres user (unlike age, whose
private key never has to be on a backed-up host). It never goes on a command line.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import re
import shutil
import stat
import tempfile
from typing import Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError

#: what a stanza, site or host may be named (path components and pgBackRest section names)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: a value written into the ini file: no line breaks (they would inject options)
_VALUE_RE = re.compile(r"[^\r\n\x00]*")
DEFAULT_CONFIG = "/etc/pgbackrest/lifeline.conf"


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value) or value.startswith(".."):
        raise ConfigError("%s %r is not usable as a pgBackRest name: use letters, digits, '.', '_' "
                          "or '-' (at most 63, not starting with a dot)" % (what, value))
    return value


def _value(value, what: str) -> str:
    text = str(value)
    if not _VALUE_RE.fullmatch(text):
        raise ConfigError("%s must be one line (no line breaks)" % what)
    return text


@dataclasses.dataclass
class PitrSettings:
    """Everything pgbackrest.conf says; ``repositories`` as in ``lifeline_repositories``."""

    repositories: list
    site: str
    host: str
    data_dir: str
    cipher_pass: str = dataclasses.field(repr=False, default="")
    stanza: str = "lifeline"
    port: int = 5432
    socket_dir: str | None = None
    process_max: int = 2
    spool_path: str = "/var/spool/pgbackrest"
    archive_push_queue_max: str = "4GiB"
    log_path: str = "/var/log/pgbackrest"
    lock_path: str = "/var/lib/pgbackrest/lock"
    retention_full: int = 2
    io_timeout: int = 60

    def __post_init__(self) -> None:
        for value, what in ((self.site, "site"), (self.host, "host"), (self.stanza, "stanza")):
            check_name(value, what)
        if not self.repositories:
            raise ConfigError("no repositories for point-in-time recovery: lifeline_repositories "
                              "needs a path or an s3 repository")
        if not self.cipher_pass or len(self.cipher_pass) < 20:
            raise ConfigError("the pgBackRest cipher passphrase is missing or shorter than 20 characters: "
                              "set lifeline_postgresql_pitr_cipher_pass (in Vault), for example "
                              "from `openssl rand -base64 48`")
        if not os.path.isabs(self.data_dir or ""):
            raise ConfigError("lifeline_postgresql_data_dir must be an absolute path, got %r" % (self.data_dir,))

    def stanza_path(self) -> str:
        return "pitr/%s/%s" % (self.site, self.host)


def _repo_lines(index: int, spec: dict, settings: PitrSettings) -> list:
    key = "repo%d" % index
    name = spec.get("name") or key
    lines = ["%s-cipher-type=aes-256-cbc" % key, "%s-cipher-pass=%s" % (key, _value(settings.cipher_pass, "the passphrase")),
             "%s-retention-full=%d" % (key, settings.retention_full)]
    if spec.get("path") and spec.get("s3"):
        raise ConfigError("repository %r: give either path or s3, not both" % name)
    if spec.get("path"):
        root = _value(spec["path"], "repository %r path" % name)
        if not os.path.isabs(root):
            raise ConfigError("repository %r: path must be absolute, got %r" % (name, root))
        return ["%s-path=%s" % (key, os.path.join(root, settings.stanza_path()))] + lines
    s3 = spec.get("s3")
    if not s3:
        raise ConfigError("repository %r: needs either path or s3" % name)
    endpoint = s3.get("endpoint_url") or "https://s3.%s.amazonaws.com" % (s3.get("region") or "us-east-1")
    found = re.fullmatch(r"(https?)://([^/:\s]+)(?::(\d+))?/?", endpoint)
    if not found:
        raise ConfigError("repository %r: endpoint_url %r is not http(s)://host[:port]" % (name, endpoint))
    if found.group(1) != "https":
        raise ConfigError("repository %r: pgBackRest talks to S3 only over TLS; endpoint_url %r must be "
                          "https://" % (name, endpoint))
    if not (s3.get("access_key") and s3.get("secret_key")):
        raise ConfigError("repository %r: pgBackRest needs access_key and secret_key for S3" % name)
    prefix = _value(s3.get("prefix") or "", "repository %r prefix" % name).strip("/")
    out = ["%s-type=s3" % key,
           "%s-path=/%s" % (key, "/".join(p for p in (prefix, settings.stanza_path()) if p)),
           "%s-s3-bucket=%s" % (key, _value(s3["bucket"], "bucket")),
           "%s-s3-endpoint=%s" % (key, found.group(2)),
           "%s-s3-region=%s" % (key, _value(s3.get("region") or "us-east-1", "region")),
           "%s-s3-key=%s" % (key, _value(s3["access_key"], "access_key")),
           "%s-s3-key-secret=%s" % (key, _value(s3["secret_key"], "secret_key"))]
    if found.group(3):
        out.append("%s-storage-port=%s" % (key, found.group(3)))
    if s3.get("session_token"):
        out.append("%s-s3-token=%s" % (key, _value(s3["session_token"], "session_token")))
    style = s3.get("addressing_style") or "auto"
    out.append("%s-s3-uri-style=%s" % (key, "host" if style == "virtual" else "path"))
    if s3.get("verify_tls") is False:
        out.append("%s-storage-verify-tls=n" % key)
    if s3.get("ca_bundle"):
        out.append("%s-storage-ca-file=%s" % (key, _value(s3["ca_bundle"], "ca_bundle")))
    return out + lines


def render(settings: PitrSettings) -> str:
    """The whole pgbackrest.conf; deterministic, so an unchanged setting rewrites nothing."""
    lines = ["# Managed by Lifeline (lifeline.dr.postgres_pitr); holds the repository passphrase and",
             "# S3 keys: keep it 0600, owned by postgres.", "[global]"]
    specs = [{k: v for k, v in s.items() if v is not None} for s in settings.repositories]
    if len(specs) > 4:
        raise ConfigError("pgBackRest supports at most 4 repositories, lifeline_repositories has %d" % len(specs))
    for index, spec in enumerate(specs, start=1):
        lines += _repo_lines(index, spec, settings)
    lines += ["compress-type=zst", "process-max=%d" % int(settings.process_max),
              "archive-async=y", "spool-path=%s" % _value(settings.spool_path, "spool path"),
              "archive-push-queue-max=%s" % _value(settings.archive_push_queue_max, "archive-push-queue-max"),
              "log-path=%s" % _value(settings.log_path, "log path"),
              "lock-path=%s" % _value(settings.lock_path, "lock path"),
              "log-level-console=warn", "log-level-stderr=error", "log-level-file=info",
              "io-timeout=%d" % int(settings.io_timeout), "start-fast=y", "",
              "[%s]" % settings.stanza, "pg1-path=%s" % _value(settings.data_dir, "data dir"),
              "pg1-port=%d" % int(settings.port)]
    if settings.socket_dir:
        lines.append("pg1-socket-path=%s" % _value(settings.socket_dir, "socket dir"))
    return "\n".join(lines) + "\n"


def write_private(path: str, text: str, *, owner: str | None = "postgres") -> bool:
    """Write ``text`` to ``path`` 0600 (owned by ``owner`` when we are root), atomically; False
    when the file already holds exactly that text with those rights."""
    uid = gid = -1
    if owner and os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        uid, gid = pw.pw_uid, pw.pw_gid
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            same = fh.read() == text
        if same and (st.st_mode & 0o777) == 0o600 and uid in (-1, st.st_uid):
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc.strerror)) from None
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lifeline-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        if uid != -1:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def make_dirs(settings: PitrSettings, *, owner: str | None = "postgres", repositories: bool = True) -> None:
    """Spool, log and lock directories and (``repositories``) every path repository's stanza
    directory, owned by the postgres user."""
    paths = [settings.spool_path, settings.log_path, settings.lock_path]
    for spec in settings.repositories if repositories else []:
        if spec.get("path"):
            paths.append(os.path.join(spec["path"], settings.stanza_path()))
    uid = gid = -1
    if owner and os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        uid, gid = pw.pw_uid, pw.pw_gid
    for path in paths:
        os.makedirs(path, mode=0o750, exist_ok=True)
        _own_directory(path, uid, gid)


def _own_directory(path: str, uid: int, gid: int) -> None:
    """Take ``path`` over for pgBackRest: refuse a symlink or a directory another user made (in a
    shared parent such as /tmp it could hold planted symlinks that pgBackRest, as postgres, would
    open), then set the owner and 0750 on the directory itself, never through a link."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError("%s must be a directory, not a symlink or a file: remove it or choose another "
                          "path (spool_path, log_path, lock_path)" % path)
    if st.st_uid not in (0, os.geteuid(), uid):
        raise ConfigError("%s already exists and belongs to uid %d, not root or the postgres user: someone "
                          "else made it; remove it or choose another path" % (path, st.st_uid))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if uid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o750)
    finally:
        os.close(fd)


@contextlib.contextmanager
def private_config(path: str, text: str, *, temporary: bool = False) -> Iterator[str]:
    """``path`` written with ``text`` (write_private); when ``temporary`` (check mode) a private
    copy beside it (or in the temporary directory), removed after."""
    if not temporary:
        write_private(path, text)
        yield path
        return
    # A 0700 directory of its own (owned by postgres, who runs the engine): the passphrase and
    # keys never sit in a shared directory, not even when a kill skips the clean-up.
    directory = tempfile.mkdtemp(prefix=".lifeline-check-",
                                 dir=os.path.dirname(path) if os.path.isdir(os.path.dirname(path)) else None)
    try:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(directory, pw.pw_uid, pw.pw_gid)
        tmp = os.path.join(directory, os.path.basename(path) or "lifeline.conf")
        write_private(tmp, text)
        yield tmp
    finally:
        shutil.rmtree(directory, ignore_errors=True)
