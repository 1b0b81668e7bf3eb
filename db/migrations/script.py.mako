"""${message}

Applied by `python -m db migrate` to a database that lacks it; follows ${down_revision}.
Rules (docs/how-it-works.md, "Add a field"): idempotent (IF NOT EXISTS), and the
code already deployed keeps working on the result (new columns nullable or defaulted).
"""

from alembic import op

revision = "${up_revision}"
down_revision = "${down_revision}"


def upgrade() -> None:
    # For example: op.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS source TEXT")
    raise NotImplementedError("write this revision's statements, then remove this line")
