"""Item 11: organisations that enforce constraints/gcp.resourceLocations without `global`
refuse a secret with automatic replication (400 FAILED_PRECONDITION, as the stand-in
answers). deploy.sh creates the secret before anything else and, refused, stops with the
fix; --secret-locations creates it with user-managed replication in those regions."""

from gcloud_standin import DSN, PROJECT, SCENARIOS, GoogleCloudStandIn, Scenario, scenario


@SCENARIOS.define()
def constrained_org_automatic_replication() -> Scenario:
    standin = GoogleCloudStandIn(PROJECT).start()
    standin.deny_global_locations = True
    world = scenario(standin)
    world.deploy("--project", PROJECT, env={"DATABASE_URL": DSN})
    return world


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
