"""The per-instance runtime: what one function instance builds once and every request reuses.

main.py creates one Runtime at import, as a module-level global outside the
handler (CockroachDB's serverless best practice: a pool that persists across
invocations). Creating it does nothing: the settings are read and the engine is
built on the first request that needs the database, so a cold start that only
answers a 4xx never waits for Secret Manager or the cluster, and a
configuration error is a 503 with a clear log line rather than a crashed instance.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from core import logs
from db.database import Database
from db.secret import DsnSource
from db.settings import Settings

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = environ  # None: os.environ, read when first needed
        self._lock = threading.Lock()
        self._database: Database | None = None
        self._project = Settings.project_from_environment(environ)
        # Needed by every POST before the database is: read now, not with the rest.
        self.body_time_limit = Settings.body_timeout_from_environment(environ)
        # A DSN set directly is a secret from the start: a library that logs it
        # (or the whole environment) before the first request must not print it.
        for secret in Settings.secrets_from_environment(environ):
            logs.redact(secret)
        self._label_execution_id = Settings.log_execution_id_from_environment(environ)

    def database(self) -> Database:
        """The instance's Database, created on first use (not at import, not per request)."""
        database = self._database
        if database is None:
            with self._lock:
                if self._database is None:
                    settings = Settings.from_environment(self._environ)
                    self._database = Database(
                        settings, DsnSource.from_settings(settings), on_secret=logs.redact
                    )
                database = self._database
        return database

    def project(self) -> str:
        """The Google Cloud project, for Cloud Logging's trace field ("" if unknown)."""
        return self._project

    def labels_execution_id(self) -> bool:
        """Whether log lines carry functions-framework's execution id (LOG_EXECUTION_ID)."""
        return self._label_execution_id

    @property
    def started(self) -> bool:
        """Whether a request has needed the database yet."""
        return self._database is not None

    def close(self) -> None:
        """Close the pool's connections cleanly (at shutdown, and between tests).

        Each idle connection gets PostgreSQL's Terminate message before its
        socket closes, so the server sees a client that said goodbye rather than
        one that vanished. Called once the requests in flight have finished.
        """
        with self._lock:
            if self._database is not None and self._database.dispose():
                logger.info("database connections closed")
