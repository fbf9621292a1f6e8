# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""UTC time as every layer writes and reads it: ISO-8601 with milliseconds and a Z."""
from __future__ import annotations

import datetime

from ansible_collections.lifeline.dr.plugins.module_utils.errors import ConfigError


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def isotime(when: datetime.datetime) -> str:
    """UTC with milliseconds: two backups finishing within one second still order correctly."""
    when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)


def parse_time(text: str) -> datetime.datetime:
    """Parse an ISO-8601 time; a time without a zone is taken as UTC."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ConfigError("%r is not an ISO-8601 time (example: 2026-11-23T02:00:00Z)" % (text,)) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc)
