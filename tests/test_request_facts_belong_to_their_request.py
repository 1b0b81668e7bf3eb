"""A request's line reports its own facts: whether it opened a connection, and how
long getting one took, never what an earlier request on the same thread did."""

import json
import threading
import time

from function_harness import FunctionServer, HeldConnection, load_function


def request_line(lines: list[dict]) -> dict:
    [line] = [entry for entry in lines if "httpRequest" in entry]
    return line


def test_answers_that_need_no_database_after_a_201_on_the_same_thread_opened_nothing(events_db, tmp_path):
    # One thread: every request below is served by the thread that opened the connection.
    env = {"DATABASE_URL": events_db.dsn(), "THREADS": "1"}
    with FunctionServer(env, tmp_path / "function.log") as server:
        first = server.request(body=b'{"kind": "opens"}')
        assert first.status == 201
        for method, body, path, status in (
            ("POST", b'{"kind": ', "/", 400),
            ("PUT", b"{}", "/", 405),
            ("GET", None, "/foo", 404),
        ):
            before = len(server.log_lines())
            assert server.request(method, body, path=path).status == status
            line = request_line(server.log_lines()[before:])
            assert line["status"] == status
            assert line["new_connection"] is False, line
            assert line["checkout_ms"] == 0
            assert line["rows"] == 0
        lines = [entry for entry in server.log_lines() if "httpRequest" in entry]
    assert [line["new_connection"] for line in lines] == [True, False, False, False]


def test_checkout_time_includes_the_wait_for_the_held_connection(events_db, monkeypatch, capfd):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1")
    assert client.get("/").status_code == 200
    with HeldConnection(module.runtime.database()) as held:  # the pool's only connection
        capfd.readouterr()
        threading.Timer(0.5, held.release).start()
        started = time.monotonic()
        reply = client.post("/", json={"kind": "waited"})
        waited_ms = (time.monotonic() - started) * 1000
    assert reply.status_code == 201
    line = request_line([json.loads(text) for text in capfd.readouterr().out.splitlines()])
    assert 450 <= line["checkout_ms"] <= waited_ms
    assert line["new_connection"] is False


def test_the_first_request_reports_the_connection_it_opened(events_db, monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1")
    capfd.readouterr()
    assert client.post("/", json={"kind": "first"}).status_code == 201
    assert client.post("/", json={"kind": "second"}).status_code == 201
    lines = [json.loads(text) for text in capfd.readouterr().out.splitlines()]
    first, second = [line for line in lines if "httpRequest" in line]
    assert (first["new_connection"], second["new_connection"]) == (True, False)
    assert first["checkout_ms"] > 0 and second["checkout_ms"] > 0
