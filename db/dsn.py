"""Turn a libpq-style connection string into what SQLAlchemy and pg8000 need.

The input is the string CockroachDB Cloud's console hands out,

    postgresql://USER:PASSWORD@HOST:26257/defaultdb?sslmode=verify-full&sslrootcert=/path/ca.crt

pg8000 understands neither URLs nor `sslmode`: passing `?sslmode=...` through
SQLAlchemy raises TypeError, and pg8000's own default TLS verifies nothing (it
even falls back to plain text when the server declines TLS). So the TLS
parameters are translated here into an explicit `ssl.SSLContext`, with libpq's
meaning for each mode, and every other parameter is either mapped or refused.

No message raised from this module contains the password or the whole DSN.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy.engine import URL

from db.dialect import DRIVERNAME
from db.errors import ConfigurationError

FUNCTION_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMES = ("postgresql", "postgres", "cockroachdb")
SSLMODES = ("disable", "require", "verify-ca", "verify-full")
# Query parameters understood here; anything else is a configuration error, so
# a typo (or a libpq option pg8000 would silently ignore) is caught at once.
PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "options")


# A NamedTuple, not a dataclass: a dataclass's methods are generated and compiled
# at import, about 5 M instructions each, which every cold start pays (README, "Cold start").
class ConnectionTarget(NamedTuple):
    """Where and how to connect: a SQLAlchemy URL plus pg8000 keyword arguments."""

    url: URL
    connect_args: dict[str, Any]
    sslmode: str

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
    if "options" in params:
        # CockroachDB Cloud routes some clusters by `options=--cluster=NAME`;
        # libpq sends it as the `options` startup parameter, and so does this.
        connect_args["startup_params"] = {"options": params["options"]}

    url = URL.create(
        DRIVERNAME,
        username=unquote(parts.username),
        password=unquote(parts.password) if parts.password is not None else None,
        host=host,
        port=port,
        database=database,
    )
    return ConnectionTarget(url=url, connect_args=connect_args, sslmode=sslmode)


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
