//! The fixed objects sync installs in every database with data sources: schemas, profile
//! tables, the secure profile views and the impersonation stub.
//!
//! Profile tables are normalized (rows, not arrays or JSON) so the same SQL runs on Redshift.
//! They are owned by the system role and never granted to the query role; what a session may
//! see of its own profile goes through the secure views, each filtered to the user of the
//! session's pinned token (see tokens.rs) and marked `security_barrier` so a client's
//! predicate cannot look at other users' rows. `profile_access` holds the precomputed
//! entitlement rows the policy views join (see entitle.rs); its `salt` is deliberately not
//! part of `user_access`.

use super::{FUNCTIONS_SCHEMA, PROCEDURES_SCHEMA, SYSTEM_SCHEMA};

/// Tables sync creates when missing: (name, columns, `{text}` for the text type, see
/// `Dialect::columns`).
pub const TABLES: [(&str, &str); 8] = [
    (
        "profile_users",
        "user_name {text} PRIMARY KEY, can_impersonate boolean NOT NULL",
    ),
    (
        "profile_groups",
        "user_name {text} NOT NULL, group_name {text} NOT NULL, PRIMARY KEY (user_name, group_name)",
    ),
    (
        "profile_attributes",
        "user_name {text} NOT NULL, attribute {text} NOT NULL, value {text} NOT NULL, \
         PRIMARY KEY (user_name, attribute, value)",
    ),
    (
        "profile_access",
        "user_name {text} NOT NULL, data_source {text} NOT NULL, flags {text} NOT NULL, \
         attribute_values {text} NOT NULL, salt {text} NOT NULL, PRIMARY KEY (user_name, data_source)",
    ),
    // The identity tokens the proxy pins (see tokens.rs): the views' only way to a user.
    (
        super::tokens::TOKENS_TABLE,
        "token {text} PRIMARY KEY, user_name {text} NOT NULL, issuer {text} NOT NULL, \
         impersonation boolean NOT NULL DEFAULT false",
    ),
    // One row per synced data source: how sync finds views to drop, keeps salts stable and
    // tells whether a view's definition changed.
    (
        "data_sources",
        "data_source {text} PRIMARY KEY, view_schema {text} NOT NULL, view_name {text} NOT NULL, \
         salt {text} NOT NULL, definition_sha256 {text} NOT NULL",
    ),
    // One row per class view (see classes.rs), so sync replaces only what changed and drops
    // classes nobody falls in any more.
    (
        "class_views",
        "view_name {text} PRIMARY KEY, data_source {text} NOT NULL, definition_sha256 {text} NOT NULL",
    ),
    // Fingerprints of the secure views and the procedure, so they are replaced only when
    // this code changes them.
    (
        "managed_objects",
        "object {text} PRIMARY KEY, definition_sha256 {text} NOT NULL",
    ),
];

/// Profile tables the query role must never read.
pub const PROFILE_TABLES: [&str; 5] = [
    "profile_users",
    "profile_groups",
    "profile_attributes",
    "profile_access",
    super::tokens::TOKENS_TABLE,
];

/// The secure views: (name, select list, profile table).
const SECURE_VIEWS: [(&str, &str, &str); 4] = [
    (
        "user_profile",
        "user_name, can_impersonate",
        "profile_users",
    ),
    ("user_groups", "group_name", "profile_groups"),
    ("user_attributes", "attribute, value", "profile_attributes"),
    ("user_access", "data_source", "profile_access"),
];

/// The catalog views a client reads in place of PostgreSQL's while tables are registered
/// (the rewriter maps them, see `rewrite::tables`): (PostgreSQL's view, ours in
/// `immuta_system`, what ours keeps). Its settings without redveil's own; of the activity,
/// only the client's own backend, since every other one is another client's (one login).
pub const SESSION_VIEWS: [(&str, &str, &str); 2] = [
    (
        "pg_settings",
        "own_settings",
        "SELECT * FROM pg_catalog.pg_settings WHERE name NOT LIKE 'immuta.%'",
    ),
    (
        "pg_stat_activity",
        "own_activity",
        "SELECT * FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()",
    ),
];

/// A fixed object: its qualified name, the DDL that (re)creates it, and the privilege the
/// query role gets on it.
pub struct Managed {
    pub name: String,
    pub ddl: String,
    pub kind: ManagedKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedKind {
    /// The query role gets SELECT.
    View,
    /// The query role gets EXECUTE; `signature` is for `has_function_privilege` and GRANT.
    Procedure { signature: String },
}

/// The secure views and the impersonation stub, in `dialect`'s SQL.
pub fn managed_objects(dialect: crate::dialect::Dialect) -> Vec<Managed> {
    let mut objects: Vec<Managed> = SECURE_VIEWS
        .iter()
        .map(|(name, columns, table)| Managed {
            name: format!("{SYSTEM_SCHEMA}.{name}"),
            ddl: format!(
                "CREATE OR REPLACE VIEW {SYSTEM_SCHEMA}.{name}{} AS \
                 SELECT {columns} FROM {SYSTEM_SCHEMA}.{table} \
                 WHERE user_name = {}",
                dialect.view_options(),
                super::tokens::session_user_sql(dialect)
            ),
            kind: ManagedKind::View,
        })
        .collect();
    if dialect.has_session_views() {
        objects.extend(SESSION_VIEWS.iter().map(|(_, name, select)| Managed {
            name: format!("{SYSTEM_SCHEMA}.{name}"),
            ddl: format!("CREATE OR REPLACE VIEW {SYSTEM_SCHEMA}.{name} AS {select}"),
            kind: ManagedKind::View,
        }));
    }
    // Direct connections reach the cluster without the proxy, which is what answers this
    // call; say so instead of failing with "procedure does not exist".
    objects.push(Managed {
        name: format!("{PROCEDURES_SCHEMA}.impersonate_user"),
        ddl: format!(
            "CREATE OR REPLACE PROCEDURE {PROCEDURES_SCHEMA}.impersonate_user(user_name {}) \
             LANGUAGE plpgsql AS $$ BEGIN {} END $$",
            dialect.text_type(),
            dialect.raise_sql(
                "immuta_procedures.impersonate_user works only through the redveil proxy; connect through it to impersonate a user"
            )
        ),
        kind: ManagedKind::Procedure {
            signature: format!(
                "{PROCEDURES_SCHEMA}.impersonate_user({})",
                dialect.text_type()
            ),
        },
    });
    objects
}

/// Schemas sync creates, besides the view schema. `immuta_functions` is where masking helpers
/// would live; today's masks are inline expressions (cheaper to plan), but the schema is part
/// of the layout clients and tools expect.
pub const SCHEMAS: [&str; 4] = [
    SYSTEM_SCHEMA,
    FUNCTIONS_SCHEMA,
    PROCEDURES_SCHEMA,
    super::classes::CLASSES_SCHEMA,
];
