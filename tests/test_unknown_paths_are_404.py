"""Only "/" is the function's: any other path is a 404 with a JSON body, answered
without touching the database (not even building the engine)."""

import pytest
from function_harness import FunctionServer


@pytest.fixture(scope="module")
def server(events_server, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("not-found") / "function.log"
    with FunctionServer({"DATABASE_URL": events_server.dsn()}, log_path) as running:
        yield running


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/foo"), ("POST", "/foo"), ("GET", "/healthz"), ("HEAD", "/foo/"), ("PUT", "/events")],
)
def test_other_paths_are_404_json_without_a_database_connection(server, events_db, method, path):
    reply = server.request(method, b'{"kind": "lost"}' if method in ("POST", "PUT") else None, path=path)
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json"
    if method != "HEAD":
        assert "the function answers at /" in reply.json()["error"]
    assert events_db.connections_opened() == 0
    assert events_db.connection_count() == 0
    assert events_db.rows() == {}
    assert not [line for line in server.log_lines() if line.get("logger") == "db.database"]
