"""The DSN's secret: created before anything else that could fail on it (automatic
replication, or user-managed in --secret-locations for organisations that forbid `global`,
whose refusal the stand-in answers as Google does), labelled, given a new version only when
the DSN changed, and delivered to the function as a mounted file (`file`, the default) or
through the Secret Manager client (`client`). The runtime account may read that one secret."""

import base64
import json

from gcloud_standin import DSN, PASSWORD, PROJECT, SCENARIOS, GoogleCloudStandIn, Scenario, scenario

RUNTIME_MEMBER = f"serviceAccount:events-runtime@{PROJECT}.iam.gserviceaccount.com"
SECRET = f"projects/{PROJECT}/secrets/events-dsn"


@SCENARIOS.define()
def constrained_org_automatic_replication() -> Scenario:
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.deny_global_locations = True
    world = scenario(standin)
    world.deploy("--project", PROJECT, "--no-alerts", env={"DATABASE_URL": DSN})
    return world


def function_create(scenario_name: str) -> dict:
    [create] = SCENARIOS.result(scenario_name).runs[0].find("POST", r"/functions$")
    return create.body["serviceConfig"]


def test_the_secret_is_created_with_the_functions_and_the_clusters_labels():
    first = SCENARIOS.result("new_project").runs[0]
    [created] = first.find("POST", r"/secrets$")
    assert created.body["labels"] == {
        "function": "events",
        "cluster": "events-1234",
        "managed-by": "deploy-sh",
    }


def test_a_secret_without_the_labels_gets_them_on_the_next_run():
    first, second = SCENARIOS.result("new_project").runs
    assert first.find("PATCH", r"/secrets/events-dsn$") == []  # created labelled: nothing to add
    [labelled] = second.find("PATCH", r"/secrets/events-dsn$")
    assert labelled.query["updateMask"] == ["labels"]
    assert labelled.body["labels"] == {
        "function": "events",
        "cluster": "events-1234",
        "managed-by": "deploy-sh",
    }
    assert (
        "labelled secret events-dsn: function=events,managed-by=deploy-sh,cluster=events-1234"
        in second.stdout
    )


def test_a_version_is_added_only_when_the_dsn_changed():
    first, second = SCENARIOS.result("new_project").runs
    [added] = first.find("POST", r"/secrets/events-dsn:addVersion$")
    assert base64.urlsafe_b64decode(added.body["payload"]["data"]).decode() == DSN
    assert second.find("POST", r":addVersion$") == []
    assert "the DSN equals the latest version: no new version" in second.stdout


def test_the_dsn_goes_only_into_the_secret_and_never_into_output():
    world = SCENARIOS.result("new_project")
    [version] = world.standin.find("POST", r"/secrets/events-dsn:addVersion$")
    others = [r for r in world.standin.requests if r is not version]
    assert not any(PASSWORD in json.dumps(r.body, default=str) for r in others)
    assert not any(PASSWORD in run.stdout + run.stderr for run in world.runs)


def test_automatic_replication_refused_stops_with_the_fix_before_other_changes():
    [run] = SCENARIOS.result("constrained_org_automatic_replication").runs
    assert run.returncode == 2
    assert "Constraint constraints/gcp.resourceLocations violated" in run.stderr
    assert "pass --secret-locations with allowed regions, e.g. --secret-locations us-east4" in run.stderr
    [refused] = run.find("POST", r"/secrets$")
    assert refused.status == 400 and refused.body["replication"] == {"automatic": {}}
    assert run.find("POST", r"/serviceAccounts$") == [] and run.find("POST", r"/functions$") == []


def test_secret_locations_create_a_user_managed_secret_there():
    [run] = SCENARIOS.result("constrained_org_with_options").runs
    assert run.returncode == 0, run.stderr[-3000:]
    [created] = run.find("POST", r"/secrets$")
    assert created.status == 200
    assert created.body["replication"] == {
        "userManaged": {"replicas": [{"location": "us-east1"}, {"location": "us-central1"}]}
    }
    assert "created secret events-dsn (us-east1,us-central1 replication)" in run.stdout


def test_file_mode_mounts_the_latest_version_and_names_the_file():
    service = function_create("new_project")
    assert service["environmentVariables"]["DATABASE_URL_FILE"] == "/etc/secrets/dsn"
    assert "DATABASE_URL_SECRET" not in service["environmentVariables"]
    [volume] = service["secretVolumes"]
    assert volume["mountPath"] == "/etc/secrets" and volume["secret"] == "events-dsn"
    assert volume["versions"] == [{"path": "dsn", "version": "latest"}]
    assert not service.get("secretEnvironmentVariables")


def test_client_mode_names_the_secret_version_and_mounts_nothing():
    service = function_create("constrained_org_with_options")
    assert service["environmentVariables"]["DATABASE_URL_SECRET"] == f"{SECRET}/versions/latest"
    assert "DATABASE_URL_FILE" not in service["environmentVariables"]
    assert not service.get("secretVolumes") and not service.get("secretEnvironmentVariables")


def test_either_way_the_runtime_account_reads_that_one_secret_only():
    for name in ("new_project", "constrained_org_with_options"):
        standin = SCENARIOS.result(name).standin
        granted = {
            resource
            for resource, policy in standin.policies.items()
            for binding in policy.get("bindings", [])
            if RUNTIME_MEMBER in binding["members"]
        }
        assert granted == {SECRET}, (name, granted)
        assert {b["role"] for b in standin.policies[SECRET]["bindings"]} == {
            "roles/secretmanager.secretAccessor"
        }
        assert RUNTIME_MEMBER not in json.dumps(standin.policies[f"projects/{PROJECT}"])
