"""After the last step deploy.sh calls the function once as the deployer (an identity
token for the function's URL, GET /): 200 is done; 401/403 while the new function's IAM
propagates is retried; 503 prints the function's last ERROR log line and the likely
causes. --no-smoke-test skips it; --smoke-test-only does only this. With an internal
ingress it is skipped with its reason (test_network.py).

The 503 comes from the real function (functions-framework serving main.py) whose
database refuses connections, as a cluster refuses an address it does not allow; its
log lines reach the stand-in's Cloud Logging as Cloud Run would send them."""

import base64
import json
import urllib.error
import urllib.request

from function_harness import capture, free_port
from gcloud_standin import (
    PROJECT,
    REGION,
    SCENARIOS,
    GoogleCloudStandIn,
    Recorded,
    Scenario,
    scenario,
    scratch_dir,
)

from devtools.function_server import FunctionServer


@SCENARIOS.define()
def iam_propagating() -> Scenario:
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.seed_function(REGION, "events")
    standin.invoke_forbidden_seconds = 1.0
    world = scenario(standin)
    world.deploy("--project", PROJECT, "--region", REGION, "--smoke-test-only")
    return world


@SCENARIOS.define()
def database_refuses_the_function() -> Scenario:
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.seed_function(REGION, "events")
    log = scratch_dir() / "function.log"
    closed_port = free_port()  # nothing listens: the connection is refused
    # devtools' FunctionServer, not the harness's: this scenario runs in the background,
    # during other tests, so its log joins the leak check in its own test (below).
    server = FunctionServer(
        {
            "DATABASE_URL": f"postgresql://app:unused@127.0.0.1:{closed_port}/app?sslmode=disable",
            "DB_TIMEOUT": "2",
        },
        log,
    ).start()
    seen = []

    def backend() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(server.url, timeout=30) as reply:
                status, body = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        lines = server.log_lines()
        for line in lines[len(seen) :]:
            standin.add_log_line("events", REGION, line)
        seen[:] = lines
        return status, body

    standin.function_backend = backend
    world = scenario(standin)
    try:
        world.deploy("--project", PROJECT, "--region", REGION, "--smoke-test-only")
    finally:
        server.stop()
    world.extra["function_log"] = seen
    world.extra["function_log_path"] = log
    return world


def audience(token_request: Recorded) -> str | None:
    """The audience a service account asked an identity token for (None: an access token)."""
    assertion = token_request.body.decode().split("assertion=")[1]
    claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
    return claims.get("target_audience")


def test_a_first_deploy_ends_with_a_200_from_the_function():
    world = SCENARIOS.result("new_project")
    first = world.runs[0]
    assert 'smoke test: 200 {"status": "ok"}' in first.stdout
    [call] = first.find("GET", r"^/fn/")
    assert call.status == 200
    # The identity token was asked for the function's URL as audience.
    url = first.resources[f"projects/{PROJECT}/locations/{REGION}/functions/events"]["serviceConfig"]["uri"]
    assert url in [audience(r) for r in first.requests if r.api == "token"]


def test_403_while_iam_propagates_is_retried_until_200():
    [run] = SCENARIOS.result("iam_propagating").runs
    assert run.returncode == 0, run.stderr
    statuses = [r.status for r in run.find("GET", r"^/fn/")]
    assert statuses[0] == 403 and statuses[-1] == 200
    assert "IAM still propagating for the new function; retrying in" in run.stdout
    assert run.stdout.rstrip().endswith('smoke test: 200 {"status": "ok"}')


def test_503_shows_the_functions_last_error_and_the_likely_causes():
    world = SCENARIOS.result("database_refuses_the_function")
    capture.log_files.append(world.extra["function_log_path"])  # for this test's leak check
    [run] = world.runs
    assert run.returncode == 1
    errors = [line["message"] for line in world.extra["function_log"] if line.get("severity") == "ERROR"]
    assert errors and errors[-1].startswith("database unavailable: ")
    assert "smoke test: 503" in run.stdout
    assert f"the function's last ERROR log line: {errors[-1]}" in run.stdout
    causes = run.stdout.split("likely causes, most likely first:")[1].splitlines()
    assert "allowlisted addresses or private connectivity" in causes[1]
    assert "sslrootcert" in causes[2] and "events-dsn" in causes[3]
    assert f"./deploy.sh --project {PROJECT} --region {REGION} --smoke-test-only" in run.stdout


def test_no_smoke_test_calls_nothing():
    [run] = SCENARIOS.result("constrained_org_with_options").runs
    assert run.returncode == 0
    assert run.find("GET", r"^/fn/") == []
    url = run.resources[f"projects/{PROJECT}/locations/us-east1/functions/events"]["serviceConfig"]["uri"]
    assert url not in [audience(r) for r in run.requests if r.api == "token"]
    assert "smoke test" not in run.stdout
