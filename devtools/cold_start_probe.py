"""Where a cold start's time goes, one phase at a time, in a fresh process.

Run by devtools.benchmark with the same environment as the function; prints one
JSON line of seconds: imports, secret, connect, first_statement.
"""

import json
import time

started = time.perf_counter()
import main  # noqa: E402 - importing is the phase being measured

imported = time.perf_counter()
database = main.get_database()
dsn = database._read_dsn()  # Secret Manager: client import, channel, one call
secret_read = time.perf_counter()
engine = database._build(dsn)
connection = engine.connect()  # TCP, TLS handshake, SCRAM, dialect set-up queries
connected = time.perf_counter()

from core.events import parse_events  # noqa: E402
from db.events import insert_events  # noqa: E402

insert_events(connection, parse_events(b'{"kind": "cold-start-probe"}'))
done = time.perf_counter()
connection.close()
engine.dispose()
print(json.dumps({
    "imports": imported - started,
    "secret": secret_read - imported,
    "connect": connected - secret_read,
    "first_statement": done - connected,
}))
