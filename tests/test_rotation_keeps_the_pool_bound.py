"""A password rotated while a request holds a connection: the engine is rebuilt, and the
connection of the replaced engine is closed when its request returns it, so the server
never holds more of the instance's connections than the pool size."""

import time

from function_harness import HeldConnection, load_function

ROLE = "rotating_pool"


def test_a_connection_of_a_replaced_engine_is_closed_when_it_is_returned(events_db, tmp_path, monkeypatch):
    events_db.set_password(ROLE, "first-pool-password")
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(events_db.dsn(user=ROLE, password="first-pool-password"))
    module, client = load_function(
        monkeypatch, DATABASE_URL_FILE=str(dsn_file), DB_POOL_SIZE="2", SECRET_RETRY_INTERVAL="0.1"
    )
    assert client.post("/", json={"kind": "before"}).status_code == 201
    with HeldConnection(module.runtime.database()) as held:  # a request still running
        events_db.set_password(ROLE, "second-pool-password")
        dsn_file.write_text(events_db.dsn(user=ROLE, password="second-pool-password"))
        time.sleep(0.15)  # past SECRET_RETRY_INTERVAL: the file may be read again
        # The pool's second connection is refused the old password: the DSN is read
        # again and the engine rebuilt; the held connection still works.
        assert client.post("/", json={"kind": "after"}).status_code == 201
        assert events_db.connection_count(ROLE) == 2
        held.release()
    assert events_db.connection_count(ROLE) == 1
    # Two requests at once on the new engine: its pool grows to two, and no more.
    with HeldConnection(module.runtime.database()):
        assert client.post("/", json={"kind": "beside"}).status_code == 201
        assert events_db.connection_count(ROLE) == 2
    assert len(events_db.rows()) == 3
    events_db.terminate_backends(user=ROLE)
