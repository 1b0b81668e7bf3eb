"""Command line: `python -m db migrate` grows the configured database's schema to head.

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
from db.migrate import MigrationError, head_name, migrate, new_revision

MIGRATE_HELP = """\
Apply each revision in db/migrations/versions that the database lacks, in order,
and record it in the alembic_version table; a database at head is left as it is,
so running it again is safe. Prints "applied NAME" for each revision applied, or
"already at head: NAME". Run it before deploying code that needs the new schema.
On a large CockroachDB table a schema change backfills: raise DB_TIMEOUT (seconds)."""

REVISION_HELP = """\
Write the next revision file, db/migrations/versions/NNNN_MESSAGE.py, for you to
fill in (docs/how-it-works.md, "Add a field"). Needs no database."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Alembic's own INFO lines ("Will assume transactional DDL") say less than ours.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "revision":
        try:
            print(f"wrote {new_revision(args.message)}")
        except MigrationError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    return _migrate()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{migrate,revision}")
    layout = argparse.RawDescriptionHelpFormatter
    commands.add_parser(
        "migrate",
        help="apply the revisions the database lacks",
        description=MIGRATE_HELP,
        formatter_class=layout,
    )
    revision = commands.add_parser(
        "revision", help="write the next revision's file", description=REVISION_HELP, formatter_class=layout
    )
    revision.add_argument("message", help='what the revision does, e.g. "add source"')
    return parser


def _migrate() -> int:
    try:
        database = runtime.database(Config.from_environ())
    except (SettingError, ConfigurationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        applied = migrate(database)
    except (ConfigurationError, SecretUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DatabaseFault as err:
        code = f"{err.sqlstate}: " if err.sqlstate else ""
        print(f"error: {code}{err.message}" + (f"; fix: {err.fix}" if err.fix else ""), file=sys.stderr)
        return 1
    except MigrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print(f"already at head: {head_name()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
