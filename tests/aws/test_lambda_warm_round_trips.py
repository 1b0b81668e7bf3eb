"""A warm Lambda invocation waits for two network round trips, as on Google Cloud:
the pool's pre-ping and the prepared INSERT, counted on the wire by
devtools.round_trip_proxy between the handler (under awslambdaric) and PostgreSQL."""

from __future__ import annotations

import pytest
from sample_events import http_event, json_body, schedule_event

from devtools.round_trip_proxy import RoundTripProxy

WARM_ROUND_TRIPS = 2


@pytest.fixture
def proxied(lambda_function, events_db):
    with RoundTripProxy("127.0.0.1", events_db.port) as proxy:
        dsn = events_db.dsn().replace(f":{events_db.port}/", f":{proxy.port}/")
        yield lambda_function({"DATABASE_URL": dsn}), proxy


def round_trips_of(function, proxy, event) -> int:
    proxy.reset()
    reply = function.invoke(event).payload
    assert reply["statusCode"] == 201, reply
    return proxy.round_trips


def test_warm_invocations_take_two_round_trips_at_every_batch_size(proxied):
    function, proxy = proxied
    round_trips_of(function, proxy, http_event(body=json_body({"kind": "connects"})))  # not counted
    for size in (1, 100, 500):
        batch = [{"kind": "round-trips", "payload": {"n": n}} for n in range(size)]
        assert round_trips_of(function, proxy, http_event(body=json_body(batch))) == WARM_ROUND_TRIPS
    assert round_trips_of(function, proxy, schedule_event()) == WARM_ROUND_TRIPS
    assert proxy.connections == 0
