"""The deployed Python is the tested one (issue 9): python313 unless --runtime says
otherwise. GOOGLE_CLOUD_PROJECT is set on the function, which 2nd gen does not do and the
function's trace ids need."""

from gcloud_standin import PROJECT, SCENARIOS


def created(scenario_name: str) -> dict:
    [create] = SCENARIOS.result(scenario_name).runs[0].find("POST", r"/functions$")
    return create.body


def test_python313_by_default():
    assert created("new_project")["buildConfig"]["runtime"] == "python313"


def test_runtime_flag_changes_it():
    assert created("constrained_org_with_options")["buildConfig"]["runtime"] == "python312"


def test_google_cloud_project_is_set_in_every_mode():
    for name in ("new_project", "constrained_org_with_options"):
        assert created(name)["serviceConfig"]["environmentVariables"]["GOOGLE_CLOUD_PROJECT"] == PROJECT
