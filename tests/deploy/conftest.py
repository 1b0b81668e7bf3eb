"""deploy.sh's tests: the scenarios (gcloud_standin.Scenarios) start in the background once
collection is done, and the tests that read them run last, so the scenarios take the CPU the
rest of the suite leaves idle. These hooks see every collected test, not only this folder's."""

import pytest
from gcloud_standin import SCENARIOS


@pytest.hookimpl(trylast=True)  # after -k, -m and --lf have deselected what they deselect
def pytest_collection_modifyitems(items):
    """Tests that read deploy.sh scenarios run last, so their scenarios, started once
    collection is done (below), run in the background beside the rest of the suite."""
    uses_scenarios = {id(item): _uses_scenarios(item) for item in items}
    items.sort(key=lambda item: uses_scenarios[id(item)])  # stable: each group keeps its order


def pytest_collection_finish(session):
    """Start the scenarios (gcloud_standin.Scenarios, at a low CPU priority) when a
    selected test reads them, unless only collecting or collection failed."""
    if session.config.option.collectonly or session.testsfailed:
        return
    if any(_uses_scenarios(item) for item in session.items):
        SCENARIOS.start()


def pytest_sessionfinish(session):
    SCENARIOS.stop()  # a run that ended early does not wait for scenarios nobody reads


def _uses_scenarios(item) -> bool:
    return getattr(getattr(item, "module", None), "SCENARIOS", None) is not None
