"""The DSN read through the real Secret Manager client, once per instance, and rotation.

The client library talks gRPC to a local server that implements the Secret
Manager API (devtools.secret_manager_emulator); nothing in the client is patched.
"""

import json
import time

from function_harness import load_function

PROJECT = "demo-project"
SECRET = "events-dsn"


# A short retry interval, so the tests see recovery quickly (the default is 5 s).
RETRY_INTERVAL = 0.3


def secret_env(secret_manager, version="latest"):
    return {
        "DATABASE_URL_SECRET": f"projects/{PROJECT}/secrets/{SECRET}/versions/{version}",
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.host,
        "SECRET_RETRY_INTERVAL": str(RETRY_INTERVAL),
    }


def test_dsn_is_read_from_secret_manager_once_per_instance(events_db, secret_manager, monkeypatch):
    secret_manager.put(PROJECT, SECRET, events_db.dsn())
    _, client = load_function(monkeypatch, **secret_env(secret_manager))
    before = secret_manager.access_count
    for _ in range(20):
        assert client.post("/", json={"kind": "from-secret"}).status_code == 201
    assert secret_manager.access_count - before == 1


def test_rotated_password_is_picked_up_without_a_restart(events_db, secret_manager, monkeypatch):
    events_db.set_password("rotating", "first-password")
    secret_manager.put(PROJECT, SECRET, events_db.dsn(user="rotating", password="first-password"))
    module, client = load_function(monkeypatch, **secret_env(secret_manager))
    assert client.post("/", json={"kind": "before-rotation"}).status_code == 201

    # Rotate: new password on the database, new secret version, old connections gone.
    events_db.set_password("rotating", "second-password")
    secret_manager.put(PROJECT, SECRET, events_db.dsn(user="rotating", password="second-password"))
    events_db.terminate_backends(user="rotating")
    time.sleep(RETRY_INTERVAL)  # the secret was read less than the retry interval ago

    reply = client.post("/", json={"kind": "after-rotation"})
    assert reply.status_code == 201, reply.get_data(as_text=True)
    assert client.post("/", json={"kind": "steady"}).status_code == 201
    module.runtime.database().dispose()


def test_wrong_password_in_an_unchanged_secret_is_a_503(events_db, secret_manager, monkeypatch, capfd):
    secret_manager.put(PROJECT, SECRET, events_db.dsn(password="not-the-password"))
    _, client = load_function(monkeypatch, **secret_env(secret_manager))
    reply = client.post("/", json={"kind": "x"})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"]
    assert "not-the-password" not in capfd.readouterr().out


def test_missing_secret_is_a_503_naming_the_secret_then_recovers(
    events_db, secret_manager, monkeypatch, capfd
):
    _, client = load_function(
        monkeypatch,
        **{
            **secret_env(secret_manager),
            "DATABASE_URL_SECRET": f"projects/{PROJECT}/secrets/absent/versions/latest",
        },
    )
    reply = client.post("/", json={"kind": "x"})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"]
    logged = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert any(f"projects/{PROJECT}/secrets/absent" in entry["message"] for entry in logged)
    # Once the secret exists, the same instance reads it and serves.
    secret_manager.put(PROJECT, "absent", events_db.dsn())
    time.sleep(RETRY_INTERVAL)
    assert client.post("/", json={"kind": "x"}).status_code == 201
    assert events_db.dsn() not in capfd.readouterr().out


def test_unreachable_secret_manager_is_a_prompt_503_then_recovers(events_db, secret_manager, monkeypatch):
    secret_manager.put(PROJECT, SECRET, events_db.dsn())
    _, client = load_function(monkeypatch, SECRET_TIMEOUT="1", **secret_env(secret_manager))
    secret_manager.stop()
    try:
        reply = client.post("/", json={"kind": "x"})
        assert reply.status_code == 503
    finally:
        secret_manager.start()
    time.sleep(RETRY_INTERVAL)
    assert client.post("/", json={"kind": "x"}).status_code == 201


def test_malformed_secret_name_is_a_503_with_a_clear_log(monkeypatch, capfd):
    _, client = load_function(monkeypatch, DATABASE_URL_SECRET="events-dsn")
    assert client.post("/", json={"kind": "x"}).status_code == 503
    assert "projects/PROJECT/secrets/SECRET/versions/VERSION" in capfd.readouterr().out


def test_no_database_configured_is_a_503_saying_what_to_set(monkeypatch, capfd):
    _, client = load_function(monkeypatch)
    assert client.get("/").status_code == 503
    assert "DATABASE_URL" in capfd.readouterr().out
