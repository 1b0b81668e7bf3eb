"""The database down: a fast 503 with Retry-After, the process keeps serving,
and the first request after the database is back succeeds."""

import time

from function_harness import FunctionServer


def test_database_down_then_back_through_the_http_server(events_db, tmp_path):
    env = {"DATABASE_URL": events_db.dsn(), "DB_TIMEOUT": "1"}
    with FunctionServer(env, tmp_path / "function.log") as server:
        assert server.request(body=b'{"kind": "before"}').status == 201
        with events_db.stopped():
            for _ in range(3):
                started = time.monotonic()
                reply = server.request(body=b'{"kind": "while-down"}', timeout=10)
                assert reply.status == 503
                assert reply.headers["Retry-After"] == "5"
                assert time.monotonic() - started < 1.0 + 1.0  # within DB_TIMEOUT, with slack
            assert server.request("GET").status == 503
        reply = server.request(body=b'{"kind": "after"}')
        assert reply.status == 201
    assert sorted(row["kind"] for row in events_db.rows().values()) == ["after", "before"]
    log = (tmp_path / "function.log").read_text()
    assert "Traceback" not in log
