# -*- coding: utf-8 -*-
# Copyright: Lifeline contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL scripts a postgres restore replays, read as hostile input and never given to psql.

pg_dumpall's globals and the database-level part of pg_restore's output are split into
statements by a lexer that follows PostgreSQL's own rules for strings, quoted identifiers and
comments (standard_conforming_strings on, as the restore session sets it). Only statements of
the kinds those tools write are accepted; any psql meta-command (a backslash outside a string)
other than the ``\\restrict``/``\\unrestrict`` (and, in pg_restore's output, ``\\connect``)
lines they write is refused with its line number, before anything on the server changes. The
statements then run through psycopg2: server-side SQL only, no client-side commands.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from typing import Iterator

from ansible_collections.lifeline.dr.plugins.module_utils.errors import RestoreError

_RESTRICT = re.compile(r"^\\(un)?restrict [A-Za-z0-9]+[ \t]*$")
_CONNECT = re.compile(r"^\\connect [^\\\n]*$")
_IDENT_START = re.compile(r"[A-Za-z_\x80-\U0010ffff]")
_IDENT_REST = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]*")
_SPACE = " \t\n\r\f\v"
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*")


@dataclasses.dataclass
class Token:
    kind: str     # word (keyword or plain identifier), ident ("quoted"), string, number, op
    text: str     # as written
    start: int
    end: int

    @property
    def name(self) -> str:
        """The identifier this token denotes (plain words fold to lower case)."""
        if self.kind == "ident":
            return self.text[1:-1].replace('""', '"')
        return self.text.lower()

    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


@dataclasses.dataclass
class Statement:
    line: int
    text: str                       # the statement as it will run (no trailing ';')
    tokens: list = dataclasses.field(default_factory=list, repr=False)
    create_role: str | None = None  # a CREATE ROLE, run only when the role is missing

    def words(self, count: int) -> list[str]:
        return [t.upper() for t in self.tokens[:count]]


class _Lexer:
    def __init__(self, text: str, what: str, metas: tuple) -> None:
        self.text, self.what, self.metas = text, what, metas
        self.pos, self.line = 0, 1

    def fail(self, line: int, why: str) -> RestoreError:
        return RestoreError("%s line %d: %s; refusing this backup (nothing was changed)" % (self.what, line, why))

    def _advance(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def _quoted(self, quote: str, backslash: bool) -> int:
        """End (exclusive) of the quoted run starting at self.pos."""
        i, text = self.pos + 1, self.text
        while i < len(text):
            char = text[i]
            if backslash and char == "\\":
                i += 2
                continue
            if char == quote:
                if i + 1 < len(text) and text[i + 1] == quote:
                    i += 2
                    continue
                return i + 1
            i += 1
        raise self.fail(self.line, "unterminated %s" % ("string" if quote == "'" else "quoted identifier"))

    def statements(self) -> Iterator[Statement]:
        text, tokens, first_line = self.text, [], 0
        while self.pos < len(text):
            char, line = text[self.pos], self.line
            if char in _SPACE:
                self._advance(self.pos + 1)
            elif text.startswith("--", self.pos):
                eol = text.find("\n", self.pos)
                self._advance(len(text) if eol < 0 else eol)
            elif char == "\\":
                bol = text.rfind("\n", 0, self.pos) + 1
                eol = text.find("\n", self.pos)
                meta = text[self.pos:len(text) if eol < 0 else eol]
                if tokens or text[bol:self.pos].strip() or not any(p.match(meta) for p in self.metas):
                    raise self.fail(line, "psql meta-command %r" % meta[:80])
                self._advance(self.pos + len(meta))
            elif char == ";":
                if tokens:
                    yield Statement(first_line, text[tokens[0].start:tokens[-1].end], tokens)
                tokens = []
                self._advance(self.pos + 1)
            else:
                if not tokens:
                    first_line = line
                tokens.append(self._token(char, line, tokens))
        if tokens:
            yield Statement(first_line, text[tokens[0].start:tokens[-1].end], tokens)

    def _token(self, char: str, line: int, tokens: list) -> Token:
        text, start = self.text, self.pos
        if char == "'":
            prev = tokens[-1] if tokens else None
            escape = prev is not None and prev.kind == "word" and prev.end == start and prev.text in ("E", "e")
            end = self._quoted("'", escape)
            if escape:
                tokens.pop()
                start = prev.start
        elif char == '"':
            end = self._quoted('"', False)
        elif _IDENT_START.match(char):
            end = _IDENT_REST.match(text, start + 1).end()
        elif "0" <= char <= "9":
            end = _NUMBER.match(text, start).end()
        elif char == "$" or text.startswith("/*", start):
            raise self.fail(line, "dollar quoting, parameters and block comments are not written by "
                                  "PostgreSQL's dump tools")
        else:
            end = start + 1
        kind = {"'": "string", '"': "ident"}.get(char) or (
            "word" if _IDENT_START.match(char) else "number" if "0" <= char <= "9" else "op")
        self._advance(end)
        return Token(kind, text[start:end], start, end)


def split(text: str, *, what: str, metas: tuple = (_RESTRICT,)) -> list[Statement]:
    """Every statement of a dump script; RestoreError on a meta-command outside ``metas``."""
    return list(_Lexer(text, what, metas).statements())


def is_session_setup(stmt: Statement) -> bool:
    """SET and set_config lines that prepare pg_restore's own session; the restore sets its own."""
    words = stmt.words(4)
    return words[:1] == ["SET"] or (words[:2] == ["SELECT", "PG_CATALOG"] and words[3:4] == ["SET_CONFIG"])


def refuse(what: str, stmt: Statement, kind: str) -> RestoreError:
    return RestoreError("%s line %d: %r is not a statement %s writes; refusing this backup "
                        "(nothing was changed)" % (what, stmt.line, " ".join(stmt.text.split())[:80], kind))


# ---------------------------------------------------------------- password verifiers


def quote_ident(name: str) -> str:
    """An identifier as pg_dumpall writes it (quoted unless plain lower-case)."""
    if re.match(r"^[a-z_][a-z0-9_$]*$", name):
        return name
    return '"%s"' % name.replace('"', '""')


def password_matches(verifier: str, password: str, role: str) -> bool:
    """Whether a stored PostgreSQL password verifier (SCRAM-SHA-256 or md5) accepts ``password``."""
    if verifier.startswith("SCRAM-SHA-256$"):
        try:
            iterations, salt = verifier.split("$")[1].split(":")
            stored_key = verifier.split("$")[2].split(":")[0]
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
            client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
            return hmac.compare_digest(base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key)
        except (ValueError, IndexError):
            return False
    if verifier.startswith("md5"):
        return hmac.compare_digest(verifier, "md5" + hashlib.md5((password + role).encode()).hexdigest())  # nosec
    return False


def string_value(token: Token) -> str | None:
    """The value of a plain '...' literal (what pg_dumpall writes for passwords); None otherwise."""
    if token.kind != "string" or not token.text.startswith("'"):
        return None
    return token.text[1:-1].replace("''", "'")


# ---------------------------------------------------------------- globals (pg_dumpall --globals-only)

GLOBALS = "globals.sql"
#: attributes a restore never takes from the role it connects as: they would lock it out mid-way
_WITHHELD = {"NOLOGIN", "NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOINHERIT", "NOBYPASSRLS"}


def _role(stmt: Statement, index: int) -> str | None:
    tokens = stmt.tokens
    if index < len(tokens) and tokens[index].kind in ("word", "ident"):
        return tokens[index].name
    return None


def _object_after_on(stmt: Statement) -> str | None:
    """The object type of a GRANT/REVOKE/SECURITY LABEL (the word after the first ON)."""
    words = stmt.words(len(stmt.tokens))
    if "ON" not in words or words.index("ON") + 1 >= len(words):
        return None
    return words[words.index("ON") + 1]


def globals_statements(text: str, *, connecting_role: str | None = None,
                       connecting_password: str | None = None, warnings: list | None = None) -> list[Statement]:
    """The statements of pg_dumpall's globals to run, in order; RestoreError on anything else.

    ``CREATE ROLE`` comes back with ``create_role`` set (run only when the role is missing, so a
    restore onto a server that has the roles updates them). The role the restore connects as
    keeps its access: the backup's NOLOGIN, NOSUPERUSER (any NO- attribute), CONNECTION LIMIT and
    VALID UNTIL are withheld, and its password unless the backup's verifier accepts the password
    this restore connects with (the same password, restored faithfully).
    """
    out = []
    for stmt in split(text, what=GLOBALS):
        words = stmt.words(5)
        if is_session_setup(stmt):
            continue
        if words[:2] == ["CREATE", "ROLE"] and len(stmt.tokens) == 3 and _role(stmt, 2):
            stmt.create_role = _role(stmt, 2)
        elif words[:2] == ["ALTER", "ROLE"] and _role(stmt, 2) and words[3:4] in (["WITH"], ["SET"], ["RESET"], ["IN"]):
            if words[3] == "WITH" and connecting_role and _role(stmt, 2) == connecting_role:
                stmt = _keep_access(stmt, connecting_role, connecting_password, warnings)
                if stmt is None:
                    continue
        elif not (words[:3] == ["COMMENT", "ON", "ROLE"] or words[:1] in (["GRANT"], ["REVOKE"])
                  or (words[:2] == ["SECURITY", "LABEL"] and _object_after_on(stmt) == "ROLE")):
            raise refuse(GLOBALS, stmt, "pg_dumpall --globals-only")
        out.append(stmt)
    return out


def _keep_access(stmt: Statement, role: str, password: str | None, warnings: list | None) -> Statement | None:
    tokens, kept, withheld, i = stmt.tokens, [], [], 4
    while i < len(tokens):
        word = tokens[i].upper()
        if word in _WITHHELD:
            withheld.append(word)
            i += 1
        elif word in ("CONNECTION", "VALID") and i + 2 < len(tokens):
            withheld.append("%s %s" % (word, tokens[i + 1].upper()))
            i += 4 if tokens[i + 2].text == "-" else 3
        elif word in ("PASSWORD", "ENCRYPTED") and i + 1 < len(tokens):
            end = i + (2 if word == "ENCRYPTED" else 1)
            verifier = string_value(tokens[end]) if end < len(tokens) else None
            if password and not (verifier and password_matches(verifier, password, role)):
                withheld.append("its password")
            else:
                kept.append(stmt.text[tokens[i].start - tokens[0].start:tokens[end].end - tokens[0].start])
            i = end + 1
        else:
            kept.append(tokens[i].text)
            i += 1
    if withheld and warnings is not None:
        warnings.append("%s line %d: the role %s this restore connects as keeps its access; not "
                        "applied from the backup: %s" % (GLOBALS, stmt.line, role, ", ".join(withheld)))
    if not kept:
        return None
    return Statement(stmt.line, "ALTER ROLE %s WITH %s" % (tokens[2].text, " ".join(kept)), stmt.tokens)


# ---------------------------------------------------------------- database-level settings

_ALTER_DATABASE = ("OWNER", "SET", "RESET", "CONNECTION", "IS_TEMPLATE", "ALLOW_CONNECTIONS", "WITH")


def _database_position(stmt: Statement) -> int | None:
    """Index of the token naming the database in the statements pg_restore --create writes."""
    words = stmt.words(6)
    if words[:2] == ["ALTER", "DATABASE"] and words[3:4] and words[3] in _ALTER_DATABASE:
        return 2
    if words[:3] == ["COMMENT", "ON", "DATABASE"]:
        return 3
    if words[:2] == ["ALTER", "ROLE"] and words[3:5] == ["IN", "DATABASE"]:
        return 5
    if words[:1] in (["GRANT"], ["REVOKE"]) or words[:2] == ["SECURITY", "LABEL"]:
        if _object_after_on(stmt) == "DATABASE":
            return stmt.words(len(stmt.tokens)).index("ON") + 2
    return None


def database_statements(text: str, *, database: str, temp: str) -> list[Statement]:
    """The database-level statements (comment, grants, settings) of one database, rewritten to
    apply to its temporary copy ``temp``: they follow the database through the rename, so they
    are proven to apply before anything is swapped. Anything else is refused."""
    what = "database-level settings of %r" % database
    out = []
    for stmt in split(text, what=what, metas=(_RESTRICT, _CONNECT)):
        if is_session_setup(stmt) or stmt.words(2) == ["CREATE", "DATABASE"]:
            continue
        pos = _database_position(stmt)
        tokens = stmt.tokens
        if (pos is None or pos >= len(tokens) or _role(stmt, pos) != database
                or (pos + 1 < len(tokens) and tokens[pos + 1].text == ",")):
            raise refuse(what, stmt, "pg_restore --create")
        base = tokens[0].start
        stmt.text = stmt.text[:tokens[pos].start - base] + quote_ident(temp) + stmt.text[tokens[pos].end - base:]
        out.append(stmt)
    return out
