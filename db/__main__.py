"""Command line: `python -m db migrate` applies the schema to the configured database.

The database is the one the function would use: DATABASE_URL, the file named by
DATABASE_URL_FILE, or the Secret Manager version named by DATABASE_URL_SECRET.
"""

from __future__ import annotations

import argparse
import logging
import sys

from core.runtime import Runtime
from db.errors import ConfigurationError, DatabaseFault, SecretUnavailable
from db.migrate import migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["migrate"], help="migrate: create the events table if missing")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runtime = Runtime()
    try:
        count = migrate(runtime.database())
    except (ConfigurationError, SecretUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DatabaseFault as err:
        code = f"{err.sqlstate}: " if err.sqlstate else ""
        print(f"error: {code}{err.message}" + (f"; fix: {err.fix}" if err.fix else ""), file=sys.stderr)
        return 1
    finally:
        runtime.close()
    print(f"schema applied ({count} statements)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
