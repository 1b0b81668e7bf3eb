"""A warm invocation waits for two network round trips, whatever the batch size.

Counted on the wire by devtools.round_trip_proxy between the functions-framework
server and PostgreSQL: the pool's pre-ping is one, the INSERT (Bind/Execute on
the connection's prepared statement) is the other. A connection prepares the
statement once, on its first insert; a new connection (after a kill) prepares
again, and a prepared statement the server no longer accepts is prepared again
once, with the request succeeding.
"""

import json
import uuid

import pytest
from function_harness import FunctionServer, load_function

from devtools.round_trip_proxy import RoundTripProxy

WARM_ROUND_TRIPS = 2  # the pre-ping, then Bind/Execute/Sync


def batch(size: int) -> bytes:
    events = [{"id": str(uuid.uuid4()), "kind": "round-trips", "payload": {"n": n}} for n in range(size)]
    return json.dumps(events[0] if size == 1 else events).encode()


@pytest.fixture
def proxied_server(events_db, tmp_path):
    """(FunctionServer, RoundTripProxy): the function reaching PostgreSQL through the counting proxy."""
    with RoundTripProxy("127.0.0.1", events_db.port) as proxy:
        dsn = events_db.dsn().replace(f":{events_db.port}/", f":{proxy.port}/")
        with FunctionServer({"DATABASE_URL": dsn}, tmp_path / "function.log") as server:
            yield server, proxy


def round_trips_of(server: FunctionServer, proxy: RoundTripProxy, body: bytes) -> int:
    proxy.reset()
    reply = server.request(body=body)
    assert reply.status == 201, reply.body
    return proxy.round_trips


def test_warm_invocations_take_two_round_trips_at_every_batch_size(proxied_server, events_db):
    server, proxy = proxied_server
    assert server.request(body=batch(1)).status == 201  # connects and prepares: not counted
    sizes = (1, 7, 100, 500, 1, 500)
    counts = [round_trips_of(server, proxy, batch(size)) for size in sizes]
    assert counts == [WARM_ROUND_TRIPS] * len(sizes)
    # A size this connection has never seen costs the same: one statement text serves all.
    assert round_trips_of(server, proxy, batch(333)) == WARM_ROUND_TRIPS
    assert proxy.connections == 0  # nothing reconnected
    assert len(events_db.rows()) == 1 + sum(sizes) + 333


def test_health_check_is_one_round_trip(proxied_server):
    server, proxy = proxied_server
    assert server.request("GET").status == 200
    proxy.reset()
    assert server.request("GET").status == 200
    assert proxy.round_trips == 1


def test_after_a_backend_kill_the_new_connection_prepares_again_then_is_warm(proxied_server, events_db):
    server, proxy = proxied_server
    assert server.request(body=batch(3)).status == 201
    assert events_db.terminate_backends() == 1
    events_db.reset_statement_log()
    # The pre-ping finds the connection dead; the pool connects again (TCP,
    # SCRAM, the dialect's set-up), and the statement is prepared on it again.
    reconnecting = round_trips_of(server, proxy, batch(5))
    assert proxy.connections == 1 and reconnecting > WARM_ROUND_TRIPS
    assert round_trips_of(server, proxy, batch(9)) == WARM_ROUND_TRIPS
    inserts = [sql for sql in events_db.statements() if sql.startswith("INSERT INTO events")]
    assert len(inserts) == 2  # both ran on the new connection's prepared statement
    assert len(events_db.rows()) == 3 + 5 + 9


def test_a_statement_the_server_forgot_is_prepared_again_and_the_request_succeeds(events_db, monkeypatch):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn())
    assert client.post("/", json={"kind": "prepared"}).status_code == 201
    # The session loses its prepared statements (as behind a pooler that resets
    # sessions): the next Bind names a statement the server does not have (26000).
    module.runtime.database().run(lambda connection: connection.exec_driver_sql("DEALLOCATE ALL"))
    reply = client.post("/", json={"kind": "prepared-again"})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    assert client.post("/", json={"kind": "steady"}).status_code == 201
    assert sorted(row["kind"] for row in events_db.rows().values()) == [
        "prepared",
        "prepared-again",
        "steady",
    ]


def test_a_schema_change_of_the_result_type_is_prepared_again_never_a_500(
    fresh_database, events_server, monkeypatch
):
    module, client = load_function(monkeypatch, DATABASE_URL=fresh_database)
    from db.migrate import apply_schema

    apply_schema(fresh_database)
    assert client.post("/", json={"kind": "before"}).status_code == 201
    # RETURNING id now returns text, not uuid: PostgreSQL refuses the old plan
    # with 0A000 "cached plan must not change result type".
    database = fresh_database.rsplit("/", 1)[1]
    events_server.execute("ALTER TABLE events ALTER COLUMN id TYPE text USING id::text", database=database)
    reply = client.post("/", json={"kind": "after"})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    assert (
        module.runtime.database()
        .run(lambda connection: connection.exec_driver_sql("SELECT count(*) FROM events").scalar())
        .value
        == 2
    )
