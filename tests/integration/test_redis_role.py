# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redis role's requirepass line, rendered by Ansible's own templar from the role's task file
and read by a real redis-server: a hostile password is one password, never extra directives.
(The role's handler restarts the system's redis-server, so the task file is not run whole here.)"""
from __future__ import annotations

import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from redis_server import RedisServer

from ansible_collections.lifeline.dr.plugins.module_utils.redis_conn import RedisConnection

TASKS = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "redis", "tasks", "password.yml")


def _task(module: str) -> dict:
    with open(TASKS, encoding="utf-8") as fh:
        return next(t["ansible.builtin." + module] for t in yaml.safe_load(fh) if "ansible.builtin." + module in t)


def _templar(password: str) -> Templar:
    return Templar(loader=DataLoader(), variables={"lifeline_redis_password": password})


@pytest.mark.parametrize("password", [
    'two words "quoted" back\\slash \'single\' #not-a-comment',
    'x" dir "/etc',   # a quote that tries to end the value and add arguments
    "ünï cödé \\x41\\n",   # non-ASCII, and text that looks like redis.conf escapes
])
def test_hostile_password_is_one_password_in_redis_conf(tmp_path, password):
    assert _templar(password).template(trust_as_template("{{ %s }}" % _task("assert")["that"])) is True
    line = _templar(password).template(trust_as_template(_task("lineinfile")["line"]))
    server = RedisServer(str(tmp_path), password="")
    server.write_config()   # port, bind, dir ... and no password yet
    with open(server.conf_path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    server.password = password
    try:
        server.start(timeout=20)
        with server.client() as c:
            assert c.config_get("requirepass") == password and c.config_get("dir") == str(tmp_path)
        with pytest.raises(Exception, match="WRONGPASS|invalid"):
            RedisConnection(host="127.0.0.1", port=server.port, password="x", timeout=5).connect().close()
    finally:
        server.cleanup()


@pytest.mark.parametrize("password", ["first\nrename-command CONFIG \"\"", "tab\there", "cr\r", "nul\x00"])
def test_password_with_a_control_character_is_refused(password):
    assert _templar(password).template(trust_as_template("{{ %s }}" % _task("assert")["that"])) is False
    assert "control character" in _task("assert")["fail_msg"]
