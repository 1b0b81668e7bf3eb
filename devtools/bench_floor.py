"""This design's floor: only the parts the function cannot do without, for the benchmark's cold start.

functions-framework, a SQLAlchemy engine over pg8000 with a pool of one, one
verified-TLS connection opened by the first call, one INSERT per call; no
validation, no logging, no configuration but the connection. The benchmark sets
DB_URL (postgresql+pg8000://user:password@host:port/database) and DB_ROOT_CERT
(the CA file), as python-docs-samples' connect_tcp.py reads its settings.
"""

import os
import socket
import ssl

import functions_framework
import pg8000
import sqlalchemy

url = sqlalchemy.engine.make_url(os.environ["DB_URL"])
tls = ssl.create_default_context(cafile=os.environ["DB_ROOT_CERT"])


def connect():
    # The function's connections set TCP_NODELAY too: without it the first query waits for a delayed ACK.
    sock = socket.create_connection((url.host, url.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return pg8000.Connection(
        url.username, password=url.password, host=url.host, database=url.database, ssl_context=tls, sock=sock
    )


# The pool outlives the call, as the function's does; the connection opens on the first call.
engine = sqlalchemy.create_engine(
    url, creator=connect, pool_size=1, max_overflow=0, pool_pre_ping=True, isolation_level="AUTOCOMMIT"
)
INSERT = sqlalchemy.text("INSERT INTO events (kind, payload) VALUES ('floor', CAST(:payload AS JSONB))")


@functions_framework.http
def floor(request):
    with engine.connect() as connection:
        connection.execute(INSERT, {"payload": request.get_data(as_text=True)})
    return "ok", 201
