"""A bounded load run while faults are injected: the function's backends killed, rows
locked by another transaction for longer than the statement timeout, and the database
restarted with `pg_ctl restart -m immediate` (SIGQUIT: a crash, no shutdown checkpoint).

Afterwards every id of a 2xx answer is stored; no id of a 4xx or 5xx answer is, except
for 503s with `"outcome": "unknown"` (the connection died after the INSERT was sent),
which are counted apart; no id is stored twice; the server never held more of the
function's connections than the pool at any sample; and the worker's RSS is reported.

CI runs the short form below. The longer form, on demand:

    LOAD_REQUESTS=20000 scripts/test.sh tests/test_load_with_faults.py -s
"""

import collections
import concurrent.futures
import dataclasses
import http.client
import json
import os
import random
import threading
import time
import uuid

import pg8000.native
import pytest
from app_fixtures import EventsDatabase, apply_schema
from fault_helpers import HOLDER_APPLICATION, SERVER_GONE, BackgroundLoop, ConnectionSampler
from function_harness import FunctionServer

from devtools.deadlines import scaled
from devtools.postgres import ADMIN_USER, PostgresServer

REQUESTS = int(os.environ.get("LOAD_REQUESTS", "5000"))
CONCURRENCY = 16
POOL_SIZE = 4
THREADS = 8  # gunicorn threads: more requests at once than pooled connections
DB_TIMEOUT = 1.5  # the server's statement_timeout is 80 % of it: 1.2 s
KILL_EVERY = 300  # answers between two rounds of pg_terminate_backend
# The run's phases, as fractions of the requests answered. Locks are held only in
# the middle, where nothing else interferes: a backend killed or restarted while it
# waits on a lock would end before the statement timeout does.
LOCK_PHASE = (0.35, 0.65)  # requests here may carry an id another transaction holds
NO_KILLS = (0.3, 0.7)  # around the lock phase
RESTARTS_AT = (0.2, 0.85)  # `pg_ctl restart -m immediate`
LOCKED_SHARE = 0.01  # of the lock phase's single-event requests
LOCK_HOLD = 2.5 * 0.8 * DB_TIMEOUT  # seconds each holding transaction lasts before its rollback
BAD_BODIES = [
    b'{"kind": ""}',
    b"null",
    b'{"id": "00000000-0000-0000-0000-000000000000"}',
    b'{"payload": {"n": 1e-16383}}',
]
BACKOFF = 0.05  # seconds a client waits after a 503, instead of hammering a restarting database


@dataclasses.dataclass(frozen=True)
class Planned:
    body: bytes
    ids: list[str]
    bad: bool = False  # deliberately refused: must be a 400
    locked: bool = False  # its id is held by another transaction when it is sent


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer at all
    body: dict | str


def make_request(rng: random.Random, in_lock_phase: bool) -> Planned:
    roll = rng.random()
    if roll < 0.05:
        return Planned(rng.choice(BAD_BODIES), [], bad=True)
    count = 1 if roll < 0.75 else rng.randint(2, 50)
    events = [
        {"id": str(uuid.uuid4()), "kind": "load", "payload": {"n": rng.randint(0, 10**6)}}
        for _ in range(count)
    ]
    body = json.dumps(events[0] if count == 1 else events).encode()
    locked = in_lock_phase and count == 1 and rng.random() < LOCKED_SHARE
    return Planned(body, [e["id"] for e in events], locked=locked)


def make_plan(requests: int) -> list[Planned]:
    rng = random.Random(20261125)
    return [make_request(rng, LOCK_PHASE[0] <= i / requests < LOCK_PHASE[1]) for i in range(requests)]


class LockHolder:
    """The superuser's session inserting ids without committing, so a request carrying one
    waits on the lock until the server's statement timeout ends it. Each transaction is
    rolled back (nothing it inserted is kept) `hold` seconds after it began."""

    def __init__(self, server: PostgresServer, hold: float):
        self.server = server
        self.hold_seconds = hold
        self.held = 0
        self._lock = threading.Lock()
        self._connection: pg8000.native.Connection | None = None
        self._began: float | None = None

    def hold(self, event_id: str) -> None:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self.server.connect(ADMIN_USER, application_name=HOLDER_APPLICATION)
                if self._began is None:
                    self._connection.run("BEGIN")
                    self._began = time.monotonic()
                self._connection.run(
                    "INSERT INTO events (id, kind) VALUES (CAST(:id AS UUID), 'holder')", id=event_id
                )
                self.held += 1
            except SERVER_GONE:
                self._forget()  # the server is restarting: this request goes unhindered

    def release_when_due(self) -> None:
        with self._lock:
            if self._began is not None and time.monotonic() - self._began >= self.hold_seconds:
                try:
                    self._connection.run("ROLLBACK")
                    self._began = None
                except SERVER_GONE:
                    self._forget()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
            self._forget()

    def _forget(self) -> None:
        self._connection, self._began = None, None


class FaultInjector(BackgroundLoop):
    """In its own thread, as the answers come in: kills the function's backends every
    KILL_EVERY answers (outside NO_KILLS), restarts the server at RESTARTS_AT, and ends
    the lock holder's transactions when due."""

    def __init__(self, server: PostgresServer, holder: LockHolder, requests: int):
        super().__init__("fault-injector", 0.01)
        self.server = server
        self.holder = holder
        self.requests = requests
        self.answered = 0
        self.kills: list[int] = []
        self.restarts = 0
        self._next_kill = KILL_EVERY
        self._restart_marks = [int(fraction * requests) for fraction in RESTARTS_AT]

    def step(self) -> None:
        self.holder.release_when_due()
        if self._restart_marks and self.answered >= self._restart_marks[0]:
            self._restart_marks.pop(0)
            self.server.restart("immediate")
            self.restarts += 1
        elif self.answered >= self._next_kill:
            self._next_kill += KILL_EVERY
            if not NO_KILLS[0] <= self.answered / self.requests < NO_KILLS[1]:
                self._kill()

    def _kill(self) -> None:
        try:
            self.kills.append(self.server.terminate_backends())
        except SERVER_GONE:
            pass  # the server is still starting after a restart


@pytest.fixture(scope="module")
def load_db(tmp_path_factory):
    """A server of its own, since it is restarted; commits flushed before they are
    acknowledged (devtools turns that off for speed), so an immediate restart loses
    nothing the function reported as stored."""
    with PostgresServer(settings={"synchronous_commit": "on"}) as server:
        database = EventsDatabase(server)
        apply_schema(database.dsn())
        yield database


@pytest.fixture
def server(load_db, tmp_path):
    env = {
        "DATABASE_URL": load_db.dsn(),
        "DB_POOL_SIZE": str(POOL_SIZE),
        "THREADS": str(THREADS),
        "DB_TIMEOUT": str(DB_TIMEOUT),
        "LOG_LEVEL": "WARNING",
    }
    with FunctionServer(env, tmp_path / "load.log") as running:
        yield running


def run_load(server, plan: list[Planned], holder: LockHolder, injector: FaultInjector) -> list[Answer]:
    answers: list[Answer | None] = [None] * len(plan)
    local = threading.local()
    counted = threading.Lock()

    def send(index: int) -> None:
        planned = plan[index]
        if planned.locked:
            holder.hold(planned.ids[0])
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=scaled(30))
        try:
            local.conn.request("POST", "/", body=planned.body, headers={"Content-Type": "application/json"})
            reply = local.conn.getresponse()
            answers[index] = Answer(reply.status, json.loads(reply.read()))
            if reply.status == 503:
                time.sleep(BACKOFF)  # as a client honouring Retry-After would, scaled down
        except (OSError, http.client.HTTPException) as err:
            local.conn.close()
            del local.conn
            answers[index] = Answer(None, repr(err))
        with counted:
            injector.answered += 1

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(send, range(len(plan))))
    return answers


def worker_rss_mib(server: FunctionServer) -> float:
    """Resident memory of the gunicorn worker (the arbiter's child) that served the requests."""
    return server.worker_rss_bytes() / 2**20


def test_load_with_faults_stores_every_acknowledged_row_and_nothing_else(server, load_db):
    plan = make_plan(REQUESTS)
    holder = LockHolder(load_db.server, LOCK_HOLD)
    load_db.execute("TRUNCATE events", database="app")
    load_db.reset_connection_log()
    started = time.monotonic()
    with (
        ConnectionSampler(load_db.server) as sampler,
        FaultInjector(load_db.server, holder, REQUESTS) as injector,
    ):
        answers = run_load(server, plan, holder, injector)
    elapsed = time.monotonic() - started
    holder.close()

    stored = collections.Counter(
        str(row[0]) for row in load_db.execute("SELECT id FROM events WHERE kind = 'load'", database="app")
    )
    tally = sum(
        (check_answer(planned, answer, stored) for planned, answer in zip(plan, answers, strict=True)),
        collections.Counter(),
    )
    statuses = collections.Counter(answer.status for answer in answers)
    log = server.log_path.read_text()
    figures = {
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "seconds": round(elapsed, 1),
        "statuses": dict(sorted(statuses.items(), key=str)),
        "unknown_outcome_503": tally["unknown"],
        "statement_timeouts": log.count("57014"),
        "locked_requests": holder.held,
        "backends_killed": sum(injector.kills),
        "kill_rounds": len(injector.kills),
        "restarts": injector.restarts,
        "rows_checked": tally["rows_checked"],
        "lost": tally["lost"],
        "duplicated": tally["duplicated"],
        "stored_for_failed_requests": tally["stray"],
        "stored_for_unknown_outcomes": tally["unknown_stored"],
        "connections_opened": load_db.connections_opened(),
        "max_connections_seen": sampler.most,
        "connection_samples": len(sampler.counts),
        "pool_size": POOL_SIZE,
        "worker_rss_mib": round(worker_rss_mib(server), 1),
    }
    print("\nload with faults:", json.dumps(figures))

    assert None not in statuses, "a request got no HTTP answer"
    assert set(statuses) <= {201, 400, 503}, statuses
    assert tally["lost"] == tally["duplicated"] == tally["stray"] == 0, figures
    assert sum(stored.values()) == tally["rows_checked"] + tally["unknown_stored"]
    assert statuses[201] >= 0.8 * REQUESTS  # the 503s: while the database restarts, or a backend dies
    assert sum(injector.kills) > 0 and injector.restarts == len(RESTARTS_AT), "a fault was not injected"
    assert figures["statement_timeouts"] > 0, "no request waited on a lock until the statement timeout"
    assert len(sampler.counts) > 100 and sampler.most <= POOL_SIZE, figures
    assert "Traceback" not in log and load_db.app_password not in log


def check_answer(planned: Planned, answer: Answer, stored: collections.Counter) -> collections.Counter:
    """What one answer adds to the tally: rows checked, lost, stored for a failed request..."""
    tally = collections.Counter()
    if planned.bad:
        assert answer.status == 400, answer
    is_stored = [stored[event_id] > 0 for event_id in planned.ids]
    tally["duplicated"] += sum(stored[event_id] > 1 for event_id in planned.ids)
    if answer.status is not None and 200 <= answer.status < 300:
        assert answer.body["inserted"] == len(planned.ids) and answer.body["ids"] == planned.ids
        tally["rows_checked"] += len(planned.ids)
        tally["lost"] += is_stored.count(False)
    elif answer.status == 503 and answer.body.get("outcome") == "unknown":
        tally["unknown"] += 1
        tally["unknown_stored"] += is_stored.count(True)
    else:
        tally["stray"] += is_stored.count(True)
    return tally
