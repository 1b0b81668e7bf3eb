"""Loads SQLAlchemy's pytest plugin, which reads setup.cfg and the --dburi option."""

import pytest

# PostgreSQL's set-up routines for the suite (temporary tables, the default schema):
# SQLAlchemy loads them from the dialect's own package, which for db.dialect is not
# sqlalchemy.dialects.postgresql; they apply to every postgresql URL, so both runs get them.
import sqlalchemy.dialects.postgresql.provision  # noqa: F401

# Registers postgresql+pg8000_cockroachdb, so --dburi can name it.
import db.dialect  # noqa: F401

# Before the plugin's import, so its assertion helpers report what differed.
pytest.register_assert_rewrite("sqlalchemy.testing.assertions")

from sqlalchemy.testing.plugin.pytestplugin import *  # noqa: E402,F403


def pytest_report_header() -> str:
    """The dialect class the suite runs, so each log shows which dialect it measured."""
    from sqlalchemy.testing import config

    dialect = type(config.db.dialect)
    return f"dialect: {config.db.url.drivername} ({dialect.__module__}.{dialect.__qualname__})"
