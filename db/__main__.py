"""Command line: `python -m db migrate` applies the schema to the configured database.

An entry point, like main.py: the database is the one the function would use
(config.py reads DATABASE_URL, DATABASE_URL_FILE or DATABASE_URL_SECRET).
"""

from __future__ import annotations

import argparse
import logging
import sys

import runtime
from config import Config, SettingError
from core.errors import ConfigurationError, DatabaseFault, SecretUnavailable
from db.migrate import migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["migrate"], help="migrate: create the events table if missing")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        database = runtime.database(Config.from_environ())
    except (SettingError, ConfigurationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        count = migrate(database)
    except (ConfigurationError, SecretUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DatabaseFault as err:
        code = f"{err.sqlstate}: " if err.sqlstate else ""
        print(f"error: {code}{err.message}" + (f"; fix: {err.fix}" if err.fix else ""), file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(f"schema applied ({count} statements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
