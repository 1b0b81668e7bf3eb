"""What PostgreSQL 15 supports, for SQLAlchemy's dialect compliance suite.

`SuiteRequirements` leaves most features closed (skipped); SQLAlchemy's own
PostgreSQL requirements live in its test tree, which the package does not ship.
This class opens what PostgreSQL 15 and the pg8000 dialect support, each outright and
never by asking which dialect runs, so both dialects face the same list.
"""

from __future__ import annotations

from sqlalchemy.testing import exclusions
from sqlalchemy.testing.requirements import SuiteRequirements

# Features PostgreSQL 15 has, named as SuiteRequirements names them. Left closed although
# PostgreSQL has it: time_timezone (pg8000 returns TIME WITH TIME ZONE as text).
_SUPPORTED = (
    "array_type",
    "autocommit",
    "boolean_col_expressions",
    "check_constraint_reflection",
    "column_collation_reflection",
    "comment_reflection",
    "comment_reflection_full_unicode",
    "computed_columns",
    "computed_columns_default_persisted",
    "computed_columns_reflect_persisted",
    "computed_columns_stored",
    "constraint_comment_reflection",
    "cross_schema_fk_reflection",
    "ctes",
    "ctes_on_dml",
    "ctes_with_update_delete",
    "ctes_with_values",
    "date_historic",
    "datetime_historic",
    "datetime_interval",
    "datetime_literals",
    "datetime_timezone",
    "datetime_timezone_historic",
    "default_schema_name_switch",
    "delete_from",
    "except_",
    "expression_server_defaults",
    "fetch_expression",
    "fetch_first",
    "fetch_no_order_by",
    "fetch_offset_with_options",
    "fetch_ties",
    "fk_constraint_option_reflection_ondelete_noaction",
    "fk_constraint_option_reflection_ondelete_restrict",
    "fk_constraint_option_reflection_onupdate_restrict",
    "float_or_double_precision_behaves_generically",
    "foreign_key_constraint_name_reflection",
    "foreign_key_constraint_option_reflection_ondelete",
    "foreign_key_constraint_option_reflection_onupdate",
    "has_temp_table",
    "identity_columns",
    "identity_columns_standard",
    "implicit_default_schema",
    "index_ddl_if_exists",
    "index_reflects_included_columns",
    "indexes_check_column_order",
    "indexes_with_expressions",
    "infinity_floats",
    "inline_check_constraint_reflection",
    "intersect",
    "isolation_level",
    "json_type",
    "materialized_views",
    "nullsordering",
    "percent_schema_names",
    "precision_numerics_enotation_small",
    "precision_numerics_many_significant_digits",
    "precision_numerics_retains_significant_digits",
    "reflect_indexes_with_expressions",
    "reflect_table_options",  # SQLAlchemy 2.1's PostgreSQL dialect reflects them
    "reflect_tables_no_columns",
    "reflects_pk_names",
    "regexp_match",
    "regexp_replace",
    "repeated_column_foreign_keys",
    "savepoints",
    "schema_create_delete",
    "schemas",
    "server_defaults",
    "skip_autocommit_rollback",
    "supports_bitwise_and",
    "supports_bitwise_not",
    "supports_bitwise_or",
    "supports_bitwise_shift",
    "supports_bitwise_xor",
    "supports_distinct_on",
    "table_ddl_if_exists",
    "table_value_constructor",
    "temp_table_comment_reflection",
    "temp_table_names",
    "temporary_views",
    "tuple_in",
    "unicode_ddl",
    "unique_constraints_reflect_as_index",
    "update_from",
    "uuid_data_type",
    "views",
    "window_functions",
)


class PostgreSQLRequirements(SuiteRequirements):
    """SuiteRequirements with PostgreSQL's features open (see _SUPPORTED)."""

    def get_order_by_collation(self, config: object) -> str:
        return "POSIX"  # a collation every PostgreSQL build has, whatever its locale


for _name in _SUPPORTED:
    if not hasattr(SuiteRequirements, _name):  # a misspelt name would silently open nothing
        raise AttributeError(f"SuiteRequirements has no requirement {_name!r}")
    setattr(PostgreSQLRequirements, _name, property(lambda self: exclusions.open()))
