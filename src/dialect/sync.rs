//! The spellings of sync's checks and DDL that differ between the engines (see
//! `../shared/REDSHIFT-GAP.md`, table 1a).

use super::Dialect;

impl Dialect {
    /// One boolean: whether the role `$1` exists. Redshift keeps users in `pg_user`
    /// (`pg_roles` arrived in PostgreSQL 8.1, after the 8.0.2 Redshift is based on).
    pub fn role_exists_sql(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)"
            }
            Dialect::Redshift => {
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_user WHERE usename = $1)"
            }
        }
    }

    /// One boolean: whether role `$1` may SELECT from table `$2`, columns included where the
    /// engine can say. Redshift documents only `HAS_TABLE_PRIVILEGE` among the privilege
    /// functions (c_unsupported-postgresql-functions.html, r_HAS_TABLE_PRIVILEGE.html).
    pub fn can_select_sql(self) -> &'static str {
        match self {
            Dialect::Postgres => "SELECT has_any_column_privilege($1, $2, 'SELECT')",
            Dialect::Redshift => "SELECT has_table_privilege($1, $2, 'SELECT')",
        }
    }

    /// One boolean: whether role `$1` may EXECUTE function `$2`; `None` where the engine has
    /// no such check (Redshift), so the grant is always given again.
    pub fn can_execute_sql(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("SELECT has_function_privilege($1, $2, 'EXECUTE')"),
            Dialect::Redshift => None,
        }
    }

    /// One boolean: whether the sessions of role `$1` cannot see each other's statements
    /// (PostgreSQL: activity tracking off for it). `None` on Redshift, which has no such
    /// setting: there the proxy refuses the system views that show them (`logs_other_sessions`).
    pub fn statements_hidden_sql(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some(
                "SELECT current_setting('track_activities') = 'off' OR EXISTS (\
                 SELECT 1 FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_roles r ON r.oid = s.setrole \
                 WHERE r.rolname = $1 AND 'track_activities=off' = ANY (s.setconfig) AND s.setdatabase IN \
                 (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())))",
            ),
            Dialect::Redshift => None,
        }
    }

    /// A table's columns in order, as (name, type family, exact type with its modifiers), for
    /// schema `$1` and table `$2`. PostgreSQL's `format_type` is not documented on Redshift,
    /// where `SVV_COLUMNS` is (r_SVV_COLUMNS.html): its type comes apart (name, length,
    /// precision, scale) and is put back together here as `format_type` would write it.
    pub fn table_columns_sql(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                // information_schema gives the order and the type family; format_type the
                // exact type, which information_schema spreads over columns.
                "SELECT c.column_name::text, c.data_type::text, format_type(a.atttypid, a.atttypmod) \
                 FROM information_schema.columns c \
                 JOIN pg_catalog.pg_namespace n ON n.nspname = c.table_schema \
                 JOIN pg_catalog.pg_class r ON r.relnamespace = n.oid AND r.relname = c.table_name \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attname = c.column_name \
                 WHERE c.table_schema = $1 AND c.table_name = $2 ORDER BY c.ordinal_position"
            }
            Dialect::Redshift => {
                "SELECT CAST(column_name AS VARCHAR(128)), CAST(data_type AS VARCHAR(128)), \
                 CASE WHEN character_maximum_length IS NOT NULL \
                 THEN data_type || '(' || CAST(character_maximum_length AS VARCHAR(10)) || ')' \
                 WHEN data_type IN ('numeric', 'decimal') AND numeric_precision IS NOT NULL \
                 THEN 'numeric(' || CAST(numeric_precision AS VARCHAR(10)) || ',' || \
                 CAST(numeric_scale AS VARCHAR(10)) || ')' \
                 ELSE CAST(data_type AS VARCHAR(128)) END \
                 FROM svv_columns WHERE table_schema = $1 AND table_name = $2 \
                 ORDER BY ordinal_position"
            }
        }
    }

    /// What follows a policy view's name in CREATE VIEW. Redshift views take no options
    /// (r_CREATE_VIEW.html).
    pub fn view_options(self) -> &'static str {
        match self {
            Dialect::Postgres => " WITH (security_barrier)",
            Dialect::Redshift => "",
        }
    }

    /// A PL/pgSQL statement that fails with `message`. Redshift's RAISE has no USING clause
    /// (c_PLpgSQL-statements.html), so the SQLSTATE is the default there.
    pub fn raise_sql(self, message: &str) -> String {
        match self {
            Dialect::Postgres => {
                format!(
                    "RAISE EXCEPTION {} USING ERRCODE = '0A000';",
                    self.literal(message)
                )
            }
            Dialect::Redshift => format!("RAISE EXCEPTION {};", self.literal(message)),
        }
    }

    /// Column definitions for a sync table, written with `{text}` for the text type.
    pub fn columns(self, definition: &str) -> String {
        definition.replace("{text}", self.text_type())
    }
}
