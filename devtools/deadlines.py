"""One factor for every deadline the tests and the development tools wait on.

A deadline is how long a wait may last before it counts as a failure: a server that
never starts, an answer that never comes, the slack a timing assertion allows above
the time limit it checks. A passing run on an idle machine never comes near one; a
busy machine (CI beside other jobs, the suite's own workers and background scenarios)
stretches every wait alike, so they all scale together: DEADLINE_SCALE multiplies
them (default 1; 3 on a machine loaded to three times its cores).
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("DEADLINE_SCALE", "1"))


def scaled(seconds: float) -> float:
    """`seconds` times DEADLINE_SCALE."""
    return seconds * SCALE
