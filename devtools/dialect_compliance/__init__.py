"""SQLAlchemy's dialect compliance suite for this project's dialect and the stock one.

`python -m devtools.dialect_compliance` (or scripts/dialect-compliance.sh) runs it;
see docs/dialect-compliance.md.
"""
