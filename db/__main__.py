"""Command line: `python -m db migrate` applies the schema to the configured database.

The database is the one the function would use: DATABASE_URL, the file named by
DATABASE_URL_FILE, or the Secret Manager version named by DATABASE_URL_SECRET.
"""

from __future__ import annotations

import argparse
import logging
import sys

import sqlalchemy.exc

from db.database import Database
from db.errors import ConfigurationError, SecretUnavailable, server_message
from db.migrate import migrate
from db.secret import DsnSource
from db.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["migrate"], help="migrate: create the events table if missing")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = Settings.from_environment()
        database = Database(settings, DsnSource.from_settings(settings))
    except ConfigurationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        count = migrate(database)
    except (ConfigurationError, SecretUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except sqlalchemy.exc.DBAPIError as err:
        print(f"error: {type(err).__name__}: {server_message(err)}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(f"schema applied ({count} statements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
