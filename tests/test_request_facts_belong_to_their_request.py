"""A request's line reports its own facts: whether it opened a connection, and how
long it waited for one, never what an earlier request on the same thread did."""

import json
import threading
import time

from function_harness import FunctionServer, load_function


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
            assert line["pool_wait_ms"] == 0
            assert line["rows"] == 0
        lines = [entry for entry in server.log_lines() if "httpRequest" in entry]
    assert [line["new_connection"] for line in lines] == [True, False, False, False]


def test_pool_wait_is_the_time_spent_waiting_for_the_held_connection(events_db, monkeypatch, capsys):
    module, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1")
    assert client.get("/").status_code == 200
    held = module.runtime.database().engine().connect()  # the pool's only connection
    release = threading.Timer(0.5, held.close)
    capsys.readouterr()
    release.start()
    started = time.monotonic()
    reply = client.post("/", json={"kind": "waited"})
    waited_ms = (time.monotonic() - started) * 1000
    release.join()
    assert reply.status_code == 201
    line = request_line([json.loads(text) for text in capsys.readouterr().out.splitlines()])
    assert 450 <= line["pool_wait_ms"] <= waited_ms
    assert line["new_connection"] is False


def test_opening_a_connection_is_not_counted_as_waiting(events_db, monkeypatch, capsys):
    _, client = load_function(monkeypatch, DATABASE_URL=events_db.dsn(), DB_POOL_SIZE="1")
    capsys.readouterr()
    assert client.post("/", json={"kind": "first"}).status_code == 201
    line = request_line([json.loads(text) for text in capsys.readouterr().out.splitlines()])
    assert line["new_connection"] is True
    # Connecting, authenticating and SQLAlchemy's first-connection set-up take
    # milliseconds; with the pool free, none of that is waiting.
    assert line["pool_wait_ms"] < 2, line
