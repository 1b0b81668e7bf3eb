"""Turn a libpq-style connection string into what SQLAlchemy and pg8000 need.

The input is the string CockroachDB Cloud's console hands out,

    postgresql://USER:PASSWORD@HOST:26257/defaultdb?sslmode=verify-full&sslrootcert=/path/ca.crt

pg8000 understands neither URLs nor `sslmode`: passing `?sslmode=...` through
SQLAlchemy raises TypeError, and pg8000's own default TLS verifies nothing (it
even falls back to plain text when the server declines TLS). So the TLS
parameters are translated here into an explicit `ssl.SSLContext`, with libpq's
meaning for each mode, and every other parameter is either mapped or refused.
`options` is read by PostgreSQL's own rules, so the function's statement
timeout can be merged into it (`startup_options`) without changing its meaning.

No message raised from this module contains the password or the whole DSN.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy.engine import URL

from core.errors import ConfigurationError
from db.dialect import DRIVERNAME

FUNCTION_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMES = ("postgresql", "postgres", "cockroachdb")
SSLMODES = ("disable", "require", "verify-ca", "verify-full")
# Query parameters understood here; anything else is a configuration error, so
# a typo (or a libpq option pg8000 would silently ignore) is caught at once.
PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "options")
# What C's isspace() matches, which is what separates the words of `options` on the server.
SPACE = " \t\n\v\f\r"
# statement_timeout's units and their milliseconds, smallest last, as PostgreSQL's GUC tables have them.
TIME_UNITS = {"d": 86_400_000, "h": 3_600_000, "min": 60_000, "s": 1000, "ms": 1, "us": 0.001}
INT_MAX = 2**31 - 1  # statement_timeout is a C int of milliseconds
# PostgreSQL reads a number with strtol(base 0): hex, octal or decimal; then, if it
# stops at '.', 'e' or 'E', again with strtod (decimal only accepted here).
_INTEGER = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_DECIMAL = re.compile(r"[ \t\n\v\f\r]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
OPTIONS_FORM = (
    "write -c NAME=VALUE or --NAME=VALUE settings separated by spaces, with a backslash before "
    "each space or backslash inside a value (percent-encoded in the URL: %20 and %5C)"
)
TIMEOUT_FORM = (
    f"give milliseconds (e.g. 5000) or a number and one of the units {', '.join(TIME_UNITS)} (e.g. 5s)"
)


class ServerSetting(NamedTuple):
    """One setting from the DSN's `options`: `-c NAME=VALUE` (switch "-c") or `--NAME=VALUE` ("--")."""

    switch: str
    name: str
    value: str

    def words(self) -> list[str]:
        if self.switch == "--":
            return [f"--{self.name}={self.value}"]  # CockroachDB Cloud's --cluster=NAME stays as written
        return ["-c", f"{self.name}={self.value}"]


class ConnectionTarget(NamedTuple):
    """Where and how to connect: a SQLAlchemy URL plus pg8000 keyword arguments.

    `server_settings` are the DSN's `options` other than statement_timeout, whose value
    in milliseconds is `statement_timeout_ms` (None when `options` sets none);
    `startup_options` merges them with the function's own timeout.
    """

    url: URL
    connect_args: dict[str, Any]
    sslmode: str
    server_settings: tuple[ServerSetting, ...] = ()
    statement_timeout_ms: int | None = None

    def describe(self) -> str:
        """host:port/database and TLS mode, for log lines: no user, no password."""
        return f"{self.url.host}:{self.url.port}/{self.url.database} (sslmode={self.sslmode})"


def parse_dsn(dsn: str) -> ConnectionTarget:
    """Parse a connection string; raise ConfigurationError naming what is wrong."""
    dsn = dsn.strip()
    try:
        dsn.encode("utf-8")
    except UnicodeEncodeError as err:  # bytes that were not UTF-8, kept by os.environ as surrogates
        raise ConfigurationError(
            f"the connection string is not valid UTF-8 (character {err.start + 1}); write it in UTF-8, "
            "percent-encoding special characters in the password"
        ) from None
    scheme, sep, _ = dsn.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            "the connection string must start with one of " + ", ".join(f"{s}://" for s in SCHEMES)
        )
    parts = urlsplit(dsn)
    if parts.fragment:
        raise ConfigurationError(
            "the connection string has a '#': percent-encode special characters in the password (# is %23)"
        )
    if "," in parts.netloc.rpartition("@")[2]:
        raise ConfigurationError("the connection string names several hosts; give exactly one")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigurationError(
            "the port in the connection string is not a number from 1 to 65535"
        ) from None
    if not host:
        raise ConfigurationError("the connection string has no host")
    if not parts.username:
        raise ConfigurationError("the connection string has no user name")
    if port is None:
        port = 26257 if scheme.lower() == "cockroachdb" else 5432
    database = unquote(parts.path.lstrip("/")) or (
        "defaultdb" if scheme.lower() == "cockroachdb" else unquote(parts.username)
    )

    params = _query_parameters(parts.query)
    sslmode = params.get("sslmode") or ("disable" if _is_local(host) else "verify-full")
    connect_args: dict[str, Any] = {"ssl_context": _ssl_context(sslmode, params)}
    if "application_name" in params:
        connect_args["application_name"] = params["application_name"]
    # CockroachDB Cloud routes some clusters by `options=--cluster=NAME`; libpq sends
    # `options` as a startup parameter, and so does the engine, through startup_options.
    server_settings, statement_timeout = _read_options(params.get("options", ""))

    url = URL.create(
        DRIVERNAME,
        username=unquote(parts.username),
        password=unquote(parts.password) if parts.password is not None else None,
        host=host,
        port=port,
        database=database,
    )
    return ConnectionTarget(url, connect_args, sslmode, server_settings, statement_timeout)


def startup_options(target: ConnectionTarget, statement_timeout_ms: int) -> tuple[str, int, str]:
    """(the `options` startup parameter to send, the statement timeout in ms that applies, who set it:
    "DATABASE_URL options" or "DB_TIMEOUT").

    The DSN's settings keep their meaning, each re-escaped; the shorter of the
    two statement timeouts applies (0, PostgreSQL's "none", is the longest).
    """
    if statement_timeout_ms < 0:
        raise ValueError("statement_timeout_ms must be 0 (none) or more")
    own = target.statement_timeout_ms
    if own and (statement_timeout_ms == 0 or own < statement_timeout_ms):
        timeout, source = own, "DATABASE_URL options"
    else:
        timeout, source = statement_timeout_ms, "DB_TIMEOUT"
    words = [word for setting in target.server_settings for word in setting.words()]
    words += ["-c", f"statement_timeout={timeout}"]
    return " ".join(_escape(word) for word in words), timeout, source


def _read_options(options: str) -> tuple[tuple[ServerSetting, ...], int | None]:
    """The DSN's settings other than statement_timeout, and statement_timeout in ms (the last counts, as on the server)."""
    settings = _parse_options(options)
    timeouts = [s.value for s in settings if _setting_name(s.name) == "statement_timeout"]
    others = tuple(s for s in settings if _setting_name(s.name) != "statement_timeout")
    return others, _milliseconds(timeouts[-1]) if timeouts else None


def _parse_options(options: str) -> list[ServerSetting]:
    """The settings in an `options` value, read as the server reads it; ConfigurationError if it cannot be merged."""
    words = _split_words(options)
    settings: list[ServerSetting] = []
    position = 0
    while position < len(words):
        word, position = words[position], position + 1
        if word == "-c":
            if position == len(words):
                raise _options_error(f"word {position} is a -c with no NAME=VALUE after it")
            switch, argument, position = "-c", words[position], position + 1
        elif word.startswith("-c"):
            switch, argument = "-c", word[2:]
        elif word.startswith("--") and word != "--":
            switch, argument = "--", word[2:]
        else:
            # PostgreSQL's other switches (-B, -e, ...) would be refused by CockroachDB anyway.
            raise _options_error(f"word {position} is not a -c NAME=VALUE or --NAME=VALUE setting")
        name, equals, value = argument.partition("=")
        if not name or not equals:
            raise _options_error(f"word {position} has no NAME=VALUE")
        settings.append(ServerSetting(switch, name, value))
    return settings


def _split_words(options: str) -> list[str]:
    """Split as PostgreSQL's pg_split_opts does: at unescaped whitespace; a backslash
    makes the next character literal (a final lone backslash stands for nothing)."""
    words: list[str] = []
    word: list[str] | None = None  # None between words
    escaped = False
    for character in options:
        if character in SPACE and not escaped:
            if word is not None:
                words.append("".join(word))
            word = None
            continue
        if word is None:
            word = []
        if character == "\\" and not escaped:
            escaped = True
        else:
            word.append(character)
            escaped = False
    if word is not None:
        words.append("".join(word))
    return words


def _escape(word: str) -> str:
    """One word of `options`, escaped so that _split_words gives it back unchanged."""
    return "".join("\\" + c if c == "\\" or c in SPACE else c for c in word)


def _setting_name(name: str) -> str:
    # The server matches setting names ignoring case, and reads their dashes as underscores.
    return name.replace("-", "_").lower()


def _milliseconds(value: str) -> int:
    """statement_timeout's value in ms, read as PostgreSQL's parse_int reads a time setting."""
    number, rest = _number(value)
    unit = rest.strip(SPACE)
    if unit and unit not in TIME_UNITS:
        raise _options_error(f"statement_timeout={value!r} has a unit PostgreSQL does not know", TIMEOUT_FORM)
    if unit:
        number *= TIME_UNITS[unit]
        smaller = list(TIME_UNITS.values())[list(TIME_UNITS).index(unit) + 1 :]
        if smaller:  # "1.5min" is rounded to whole seconds first, as the server does
            number = round(number / smaller[0]) * smaller[0]
    milliseconds = round(number)
    if not 0 <= milliseconds <= INT_MAX:
        raise _options_error(f"statement_timeout={value!r} is outside 0 to {INT_MAX} ms", TIMEOUT_FORM)
    return milliseconds


def _number(value: str) -> tuple[float, str]:
    """The leading number of a setting's value, and the rest."""
    integer = _INTEGER.match(value)
    if integer and value[integer.end() : integer.end() + 1] not in (".", "e", "E"):
        sign = -1 if integer.group(1) == "-" else 1
        digits = integer.group(2)
        base = 16 if digits[:2].lower() == "0x" else 8 if digits.startswith("0") and len(digits) > 1 else 10
        return sign * int(digits, base), value[integer.end() :]
    decimal = _DECIMAL.match(value)
    if decimal is None:
        raise _options_error(f"statement_timeout={value!r} is not a number", TIMEOUT_FORM)
    return float(decimal.group()), value[decimal.end() :]


def _options_error(problem: str, fix: str = OPTIONS_FORM) -> ConfigurationError:
    return ConfigurationError(f"connection parameter 'options': {problem}; {fix}")


def _query_parameters(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigurationError("the connection string's query part is malformed") from None
    for name, value in pairs:
        if name not in PARAMETERS:
            raise ConfigurationError(
                f"unsupported connection parameter {name!r}; supported: {', '.join(PARAMETERS)}"
            )
        if name in params:
            raise ConfigurationError(f"connection parameter {name!r} is given twice")
        params[name] = value
    return params


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ssl_context(sslmode: str, params: dict[str, str]) -> ssl.SSLContext | bool:
    """libpq's sslmode, as an SSLContext for pg8000 (False: no TLS at all)."""
    if sslmode in ("allow", "prefer"):
        raise ConfigurationError(
            f"sslmode={sslmode} is not supported: it silently falls back to an "
            "unencrypted connection. Use verify-full (or require, verify-ca; disable only for local databases)"
        )
    if sslmode not in SSLMODES:
        raise ConfigurationError(f"sslmode must be one of {', '.join(SSLMODES)}, got {sslmode!r}")
    if sslmode == "disable":
        # False, not None: pg8000 treats None as "try TLS, fall back to plain".
        return False

    rootcert = params.get("sslrootcert")
    if sslmode == "require" and rootcert:
        # libpq: with a root certificate given, require behaves like verify-ca.
        sslmode = "verify-ca"
    try:
        context = ssl.create_default_context(cafile=_readable_file("sslrootcert", rootcert))
    except ssl.SSLError:
        raise ConfigurationError("sslrootcert: the file holds no PEM certificate") from None
    # 3.13's strict mode refuses certificates libpq accepts (a CA without keyUsage): cleared, as PyMySQL does.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    # Nor does libpq trust a certificate in sslrootcert that is not a self-signed root (3.13 would).
    context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN
    if sslmode == "require":
        # Encrypt, verify nothing: what libpq's require means without a root cert.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif sslmode == "verify-ca":
        context.check_hostname = False
    # verify-full keeps create_default_context's CERT_REQUIRED and host name check.

    if params.get("sslcert") or params.get("sslkey"):
        certfile = _readable_file("sslcert", params.get("sslcert"))
        keyfile = _readable_file("sslkey", params.get("sslkey"))
        if certfile is None:
            raise ConfigurationError("sslkey is given without sslcert")
        try:
            context.load_cert_chain(certfile, keyfile)
        except ssl.SSLError:
            raise ConfigurationError("sslcert/sslkey: not a matching PEM certificate and key") from None
    return context


def _readable_file(parameter: str, value: str | None) -> str | None:
    """A file path from the DSN, checked now so the error names the parameter.

    An absent value, or libpq's `sslrootcert=system`, means the system's CAs.
    """
    if not value or (parameter == "sslrootcert" and value == "system"):
        return None
    # Relative paths are relative to the function's own directory (where main.py
    # is), whatever the working directory, so a CA shipped with the code is found.
    path = os.path.join(FUNCTION_ROOT, os.path.expanduser(value))
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        hint = ""
        if parameter == "sslrootcert":
            # The console's DSN names a CA file on the developer's machine.
            hint = (
                "; a deployed function has only its own files: ship the CA with it "
                "(e.g. db/certs/ca.crt, a path relative to main.py) or, for a certificate "
                "the system trusts, use sslrootcert=system"
            )
        raise ConfigurationError(f"{parameter}: cannot read file {path!r}{hint}")
    return path
