# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-side CLI: the same engine the modules run, for systemd timers and for an operator
at a shell when the controller (or AWX) is down.

  lifeline [--config F] backup COMPONENT [--database D ...] [--scope full|schema|data]
           [--min-interval 12h] [--label L ...] [--lock-wait SECONDS]
  lifeline [--config F] list [--component C] [--host H]
  lifeline [--config F] verify [--component C] [--host H] [--point P]
  lifeline [--config F] prune [--component C ...] [--dry-run]

prune reads its policy from the config (keep_daily, keep_weekly, keep_monthly, pins, pin_labels,
remove_orphans, orphan_age_hours, lock_timeout; docs/retention.md) and prints its report.

The config file is JSON with the modules' option names (written 0600 by the common role). The
top level holds what every component shares and PostgreSQL's connection; each other component's
options sit in a section named after it (``"redis": {"login_host", "port", ...}``, ``"files":
{"paths", "exclude"}``, ``"secrets": {"paths"}``), laid over the top level for that component
only, so Redis's ``port`` is not PostgreSQL's. A section's password comes from the file its
``login_password_file`` names (0600, written by the common role), never from the config itself.
Secrets may come from the environment instead: LIFELINE_PG_PASSWORD, LIFELINE_REDIS_PASSWORD
(the values), LIFELINE_PASSWORD_FILE (a file holding the login password, e.g. a systemd
credential), LIFELINE_IDENTITY_FILE, LIFELINE_SIGNING_KEY_FILE.

``backup --min-interval`` (or ``min_interval`` in the config) skips the run, exit 0 and a
"skipped" line, when a backup that stands in for it finished within that time (recent.py):
timers and AWX schedules firing for one host take one backup, not two.

Exit codes (stable, for timers and monitoring):
  0 ok (prune: also a dry run), 1 partial (stored in some repositories only; prune: a component
  skipped or a delete failed),
  2 usage (bad command line), 3 configuration, 4 missing dependency, 5 repository,
  6 not found, 7 integrity (also: verify found a bad copy), 8 decryption, 9 locked, 10 source, 11 restore, 12 untrusted
  manifest, 70 internal error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ansible_collections.lifeline.dr.plugins.module_utils import components, config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import Status, run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, IntegrityError, LifelineError
from ansible_collections.lifeline.dr.plugins.module_utils.prune import prune_with
from ansible_collections.lifeline.dr.plugins.module_utils.verify import verify_backup

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


def load_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            params = json.load(fh)
    except FileNotFoundError:
        raise ConfigError("config file %s not found; run the lifeline.dr.common role or pass --config" % path) from None
    except OSError as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror)) from None
    except ValueError as exc:
        raise ConfigError("config file %s is not valid JSON: %s" % (path, exc)) from None
    if not isinstance(params, dict):
        raise ConfigError("config file %s must hold a JSON object" % path)
    if os.environ.get("LIFELINE_PG_PASSWORD"):
        params["login_password"] = os.environ["LIFELINE_PG_PASSWORD"]
    if os.environ.get("LIFELINE_PASSWORD_FILE"):
        # One trailing line break is the file's, not the password's; an empty file (a component
        # scheduled without a password) leaves the configuration's login as it is.
        text = config.read_secret_file(os.environ["LIFELINE_PASSWORD_FILE"], "password")
        text = text[:-1] if text.endswith("\n") else text
        if text:
            params["login_password"] = text
    if os.environ.get("LIFELINE_IDENTITY_FILE"):
        params["identity"] = config.read_secret_file(os.environ["LIFELINE_IDENTITY_FILE"], "identity")
    if os.environ.get("LIFELINE_SIGNING_KEY_FILE"):
        params["signing_key"] = config.read_secret_file(os.environ["LIFELINE_SIGNING_KEY_FILE"], "signing key")
    return params


#: PostgreSQL's connection at the top level: never handed to another component.
_PG_CONNECTION = ("login_host", "port", "login_user", "login_password")


def component_params(params: dict, name: str) -> dict:
    """The options the component ``name`` runs with: the top level, then its own section."""
    section = params.get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError("%r in the config file must be a JSON object (the %s component's options)" % (name, name))
    base = params if name == "postgres" else {k: v for k, v in params.items() if k not in _PG_CONNECTION}
    out = dict(base, **section)
    out.pop("login_password_file", None)
    env = os.environ.get("LIFELINE_%s_PASSWORD" % name.upper())
    if env:
        out["login_password"] = env
    elif section.get("login_password_file"):
        out["login_password"] = config.read_secret_file(section["login_password_file"], "%s password" % name).rstrip("\n")
    return out


def _emit(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifeline", description="Lifeline backups on this host",
                                     epilog="exit codes: 0 ok, 1 partial, 2 usage, 3-12 errors (see docs/operations.md)")
    parser.add_argument("--config", help="JSON config (default: /etc/lifeline/lifeline.json)")
    sub = parser.add_subparsers(dest="command", required=True)
    backup = sub.add_parser("backup", help="back up a component now")
    backup.add_argument("component", choices=components.names())
    backup.add_argument("--database", action="append", default=[], help="postgres: one database (repeatable)")
    backup.add_argument("--scope", choices=["full", "schema", "data"], default="full", help="postgres: what to dump")
    backup.add_argument("--min-interval", help="skip (exit 0) when a backup finished within this time, e.g. 12h")
    backup.add_argument("--label", action="append", default=[],
                        help="a label for the manifest (repeatable): daily|weekly|monthly name the schedule tier, 'keep' pins it")
    backup.add_argument("--lock-wait", type=float, default=0.0, help="seconds to wait for a running backup")
    for name in ("list", "verify"):
        cmd = sub.add_parser(name, help="list the catalog" if name == "list" else "verify a backup")
        cmd.add_argument("--component", default="postgres", choices=components.names())
        cmd.add_argument("--host")
        if name == "verify":
            cmd.add_argument("--point", default="latest")
    prune = sub.add_parser("prune", help="apply the retention policy to this host's backups")
    prune.add_argument("--component", action="append", default=[], choices=components.names(),
                       help="only this component (repeatable; default: all)")
    prune.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")
    return parser


def _backup(args, params: dict, *, site: str, host: str) -> int:
    if args.min_interval is not None:
        params = dict(params, min_interval=args.min_interval)
    min_interval = config.min_interval(params)  # a malformed one fails before anything runs
    component = components.get(args.component)
    options = dict(component_params(params, component.name), databases=args.database, scope=args.scope)
    outcome = run_backup(component.backup(options), config.repositories(params), config.codec(params),
                         site=site, host=host, state_dir=config.state_dir(params),
                         signer=config.signer(params), lock_wait=args.lock_wait, min_interval=min_interval,
                         labels=args.label)
    _emit(outcome.to_dict())
    if outcome.status is Status.SKIPPED:
        sys.stderr.write("lifeline: %s\n" % outcome.message)
    return EXIT_PARTIAL if outcome.status is Status.PARTIAL else EXIT_OK


def run(args, params: dict) -> int:
    host = args.host if getattr(args, "host", None) else config.host_name(params)
    site = params.get("site", "default")
    if args.command == "backup":
        return _backup(args, params, site=site, host=host)
    if args.command == "prune":
        report = prune_with(dict(params, components=args.component or params.get("components")),
                            check_mode=args.dry_run)
        _emit(report)
        return EXIT_PARTIAL if report["status"] == "partial" else EXIT_OK
    catalog = config.catalog(params)
    if args.command == "list":
        entries = catalog.entries(site=site, host=host, component=args.component)
        _emit({"backups": [e.summary() for e in entries], "warnings": catalog.warnings})
        return EXIT_OK
    component = components.get(args.component)
    entry = catalog.select(site=site, host=host, component=component.name, point=args.point)
    report = verify_backup(entry, config.codec(params),
                           check_for=component.checks(component_params(params, component.name), entry.manifest))
    _emit(report)
    return EXIT_OK if report["ok"] else IntegrityError.exit_code


def main(argv=None, default_config: str = "/etc/lifeline/lifeline.json") -> int:
    args = _parser().parse_args(argv)  # exits 2 on a usage error
    try:
        return run(args, load_config(args.config or default_config))
    except LifelineError as exc:
        sys.stderr.write("lifeline: %s: %s\n" % (type(exc).__name__, exc))
        return exc.exit_code
    except Exception as exc:  # pylint: disable=broad-except
        # A bug: one line the operator can report; no traceback that could carry parameters.
        sys.stderr.write("lifeline: internal error: %s: %s\n" % (type(exc).__name__, exc))
        return EXIT_INTERNAL
