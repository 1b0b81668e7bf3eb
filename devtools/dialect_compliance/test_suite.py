"""SQLAlchemy's third-party dialect compliance suite, as shipped in the installed package."""

from sqlalchemy.testing.suite import *  # noqa: F403
