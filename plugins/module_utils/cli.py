# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-side CLI: the same engine the modules run, for systemd timers and for an operator
at a shell when the controller (or AWX) is down.

  lifeline [--config F] backup postgres [--database D ...] [--scope full|schema|data]
  lifeline [--config F] list [--component postgres] [--host H]
  lifeline [--config F] verify [--component postgres] [--host H] [--point P]

The config file is JSON with the modules' option names (written 0600 by the common role).
Secrets may come from the environment instead: LIFELINE_PG_PASSWORD, LIFELINE_IDENTITY_FILE.
Exit codes: 0 ok, 1 partial, else the error class's code (see errors.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ansible_collections.lifeline.dr.plugins.module_utils import config
from ansible_collections.lifeline.dr.plugins.module_utils.backup import run_backup
from ansible_collections.lifeline.dr.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError, LifelineError
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_checks import check_for
from ansible_collections.lifeline.dr.plugins.module_utils.postgres_dump import PostgresComponent, Scope
from ansible_collections.lifeline.dr.plugins.module_utils.verify import verify_backup


def load_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            params = json.load(fh)
    except FileNotFoundError:
        raise ConfigError("config file %s not found; run the lifeline.dr.common role or pass --config" % path) from None
    except ValueError as exc:
        raise ConfigError("config file %s is not valid JSON: %s" % (path, exc)) from None
    if os.environ.get("LIFELINE_PG_PASSWORD"):
        params["login_password"] = os.environ["LIFELINE_PG_PASSWORD"]
    if os.environ.get("LIFELINE_IDENTITY_FILE"):
        with open(os.environ["LIFELINE_IDENTITY_FILE"], encoding="utf-8") as fh:
            params["identity"] = fh.read()
    return params


def _emit(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifeline", description="Lifeline backups on this host")
    parser.add_argument("--config", help="JSON config (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    backup = sub.add_parser("backup", help="back up a component now")
    backup.add_argument("component", choices=["postgres"])
    backup.add_argument("--database", action="append", default=[])
    backup.add_argument("--scope", choices=[s.value for s in Scope], default="full")
    for name in ("list", "verify"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--component", default="postgres")
        cmd.add_argument("--host")
        if name == "verify":
            cmd.add_argument("--point", default="latest")
    return parser


def run(args, params: dict) -> int:
    repos = config.repositories(params)
    host = args.host if getattr(args, "host", None) else config.host_name(params)
    site = params.get("site", "default")
    if args.command == "backup":
        component = PostgresComponent(config.pg_connection(params), databases=args.database,
                                      scope=Scope(args.scope), include_globals=True)
        outcome = run_backup(component, repos, config.codec(params), site=site, host=host,
                             state_dir=config.state_dir(params))
        _emit(outcome.to_dict())
        return 0 if outcome.status == "ok" else 1
    if args.command == "list":
        entries = Catalog(repos).entries(site=site, host=host, component=args.component)
        _emit([e.summary() for e in entries])
        return 0
    entry = Catalog(repos).select(site=site, host=host, component=args.component, point=args.point)
    report = verify_backup(entry, config.codec(params), check_for=check_for(config.pg_connection(params), entry.manifest))
    _emit(report)
    return 0 if report["ok"] else 6


def main(argv=None, default_config: str = "/etc/lifeline/lifeline.json") -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args, load_config(args.config or default_config))
    except LifelineError as exc:
        sys.stderr.write("lifeline: %s: %s\n" % (type(exc).__name__, exc))
        return exc.exit_code
