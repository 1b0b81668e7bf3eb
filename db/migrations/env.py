"""Alembic's environment, run by db.migrate on the connection it hands over.

Each revision runs in its own transaction together with its alembic_version
update, so a failed revision leaves neither its changes nor its record
(docs/decisions.md: what CockroachDB changes about that, and why every revision
is idempotent all the same).
"""

from alembic import context

attributes = context.config.attributes
context.configure(
    connection=attributes["connection"],
    transaction_per_migration=True,
    on_version_apply=attributes["on_version_apply"],
)
with context.begin_transaction():
    context.run_migrations()
