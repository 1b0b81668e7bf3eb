"""main.py's function, served with a careless library beside it (a function source for tests).

The library logs the connection string through its own logger when it is
imported and whenever the function checks a database connection out (a
SQLAlchemy event, so while a request is being served), as third-party code may.
The tests serve this file with the real `functions-framework` command to show
that such lines are written once, structured, scrubbed and tied to their
request, like the function's own. main.py is imported exactly as in
production, after functions-framework has set up its logging, and `handler` is
main.py's own.
"""

import logging
import os

from sqlalchemy import event
from sqlalchemy.engine import Engine

from main import handler  # noqa: F401 - the function served

library_log = logging.getLogger("a.careless.library")
library_log.warning("imported; will connect to %s", os.environ["DATABASE_URL"])


@event.listens_for(Engine, "engine_connect")
def _announce(connection) -> None:
    library_log.warning("connection checked out from %s", os.environ["DATABASE_URL"])
