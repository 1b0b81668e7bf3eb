"""Secret delivery (issue 11): `file` (the default) mounts the secret's latest version at
/etc/secrets/dsn and sets DATABASE_URL_FILE; `client` sets DATABASE_URL_SECRET for the
Secret Manager client and clears any mount. Either way the runtime account may read that
one secret, nothing else."""

import json

from gcloud_standin import PROJECT, SCENARIOS

RUNTIME_MEMBER = f"serviceAccount:events-runtime@{PROJECT}.iam.gserviceaccount.com"


def function_create(scenario_name: str) -> dict:
    run = SCENARIOS.result(scenario_name).runs[0]
    [create] = run.find("POST", r"/functions$")
    return create.body["serviceConfig"]


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
    assert (
        service["environmentVariables"]["DATABASE_URL_SECRET"]
        == f"projects/{PROJECT}/secrets/events-dsn/versions/latest"
    )
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
        assert granted == {f"projects/{PROJECT}/secrets/events-dsn"}, (name, granted)
        roles = {b["role"] for b in standin.policies[f"projects/{PROJECT}/secrets/events-dsn"]["bindings"]}
        assert roles == {"roles/secretmanager.secretAccessor"}
        assert RUNTIME_MEMBER not in json.dumps(standin.policies[f"projects/{PROJECT}"])
