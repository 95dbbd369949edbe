//! Every spelling that differs between Amazon Redshift and PostgreSQL, and how client SQL is
//! read on each (see `../shared/REDSHIFT-GAP.md` for the constructs and AWS's pages). Other
//! rooms ask a [`Dialect`] and never branch on the engine themselves. No state, no I/O.

use serde::Deserialize;

mod session;
mod spelling;
mod sync;

pub use spelling::quote_literal;

/// `backend.dialect`: which engine the cluster is, or `auto` to ask it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DialectSetting {
    /// Read `version()` on the first login to the cluster.
    #[default]
    Auto,
    Postgres,
    Redshift,
}

/// The engine behind the proxy, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Redshift,
}

/// How a plain `'...'` literal is read: with `standard_conforming_strings` on (a backslash is
/// an ordinary character) or off, as on Redshift (a backslash escapes the next character, so
/// `'\''` is one quote and `'x\'` does not end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lexing {
    #[default]
    Standard,
    Backslash,
}

impl Lexing {
    /// Backslashes escape in plain literals.
    pub fn backslash_escapes(self) -> bool {
        self == Lexing::Backslash
    }
}

/// The configured dialect disagrees with what the cluster says it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend.dialect is \"{configured}\" but the cluster is {found} (version() says {version:?}); set backend.dialect = \"{found}\" or \"auto\"")]
pub struct DialectMismatch {
    pub configured: &'static str,
    pub found: &'static str,
    pub version: String,
}

impl Dialect {
    /// The engine a `version()` string names: Redshift's reads `PostgreSQL 8.0.2 on ...,
    /// Redshift 1.0.NNNNN`.
    pub fn from_version(version: &str) -> Dialect {
        if version.to_ascii_lowercase().contains("redshift") {
            Dialect::Redshift
        } else {
            Dialect::Postgres
        }
    }

    /// The dialect to use, given the setting and what the cluster's `version()` says.
    pub fn resolve(setting: DialectSetting, version: &str) -> Result<Dialect, DialectMismatch> {
        let found = Dialect::from_version(version);
        let configured = match setting {
            DialectSetting::Auto => return Ok(found),
            DialectSetting::Postgres => Dialect::Postgres,
            DialectSetting::Redshift => Dialect::Redshift,
        };
        if configured == found {
            Ok(found)
        } else {
            Err(DialectMismatch {
                configured: configured.name(),
                found: found.name(),
                version: version.to_string(),
            })
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Redshift => "redshift",
        }
    }

    /// How a backend connection reads literals, from the `standard_conforming_strings` it
    /// reported (`None`: not reported). Redshift never reports it and always escapes; a
    /// PostgreSQL server that does not report it is read as libpq does, as `off`.
    pub fn lexing(self, standard_conforming_strings: Option<&str>) -> Lexing {
        match (self, standard_conforming_strings) {
            (Dialect::Postgres, Some(value)) if value.eq_ignore_ascii_case("on") => {
                Lexing::Standard
            }
            _ => Lexing::Backslash,
        }
    }

    /// Whether a plain literal may be sent in the `E'...'` form, which reads the same whatever
    /// `standard_conforming_strings` is. Redshift has no escape-string syntax.
    pub fn has_escape_strings(self) -> bool {
        self == Dialect::Postgres
    }

    /// The parser for client SQL: Redshift's takes `TOP`, `QUALIFY`, `[name]` and its
    /// backslash-escaping literals.
    pub fn parser(self) -> &'static dyn sqlparser::dialect::Dialect {
        match self {
            Dialect::Postgres => &sqlparser::dialect::PostgreSqlDialect {},
            Dialect::Redshift => &sqlparser::dialect::RedshiftSqlDialect {},
        }
    }
}

/// Redshift's system views that keep the statements of every session of a user (STL_QUERY,
/// STL_QUERYTEXT, SVL_STATEMENTTEXT, STV_RECENTS, STV_INFLIGHT, SYS_QUERY_HISTORY,
/// SVV_QUERY_INFLIGHT, ...). Every redveil client is one cluster user, so these show one
/// client the SQL, literals and pins of all the others.
const REDSHIFT_QUERY_LOGS: [&str; 6] = ["stl_", "stv_", "svl_", "svcs_", "sys_", "svv_query"];

/// Redshift's setting for its query result cache, which is shared across users of one login:
/// two redveil users of one class send the same text to the same view and differ only in
/// their pins (r_enable_result_cache_for_session.html).
const RESULT_CACHE_SETTING: &str = "enable_result_cache_for_session";

impl Dialect {
    /// Whether a system relation (unqualified or in pg_catalog) shows other sessions'
    /// statements on this engine, beyond PostgreSQL's own (which the rewrite room lists).
    pub fn logs_other_sessions(self, relation: &str) -> bool {
        self == Dialect::Redshift
            && REDSHIFT_QUERY_LOGS
                .iter()
                .any(|prefix| relation.to_ascii_lowercase().starts_with(prefix))
    }

    /// Whether a client may not define functions: Redshift's views have no security barrier, so
    /// a client's function in a predicate could be evaluated on rows a view hides.
    pub fn refuses_client_functions(self) -> bool {
        self == Dialect::Redshift
    }

    /// Whether clients read `pg_settings` and `pg_stat_activity` through filtered views of
    /// sync's (`policy::schema::SESSION_VIEWS`). Redshift keeps its settings and sessions
    /// elsewhere (and its query logs are refused, see `logs_other_sessions`).
    pub fn has_session_views(self) -> bool {
        self == Dialect::Postgres
    }

    /// A setting the proxy keeps at its own value on this engine.
    pub fn owns_setting(self, name: &str) -> bool {
        self == Dialect::Redshift && name.trim().eq_ignore_ascii_case(RESULT_CACHE_SETTING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDSHIFT_VERSION: &str = "PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), Redshift 1.0.77467";
    const POSTGRES_VERSION: &str = "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit";

    #[test]
    fn auto_follows_the_cluster() {
        assert_eq!(
            Dialect::resolve(DialectSetting::Auto, REDSHIFT_VERSION),
            Ok(Dialect::Redshift)
        );
        assert_eq!(
            Dialect::resolve(DialectSetting::Auto, POSTGRES_VERSION),
            Ok(Dialect::Postgres)
        );
    }

    #[test]
    fn a_configured_dialect_the_cluster_contradicts_names_the_key() {
        let error = Dialect::resolve(DialectSetting::Redshift, POSTGRES_VERSION).unwrap_err();
        assert!(error
            .to_string()
            .starts_with("backend.dialect is \"redshift\" but the cluster is postgres"));
        assert_eq!(
            Dialect::resolve(DialectSetting::Postgres, POSTGRES_VERSION),
            Ok(Dialect::Postgres)
        );
    }

    #[test]
    fn redshift_query_logs_are_known_by_prefix() {
        for view in [
            "stl_querytext",
            "STV_RECENTS",
            "svl_statementtext",
            "sys_query_history",
            "svv_query_inflight",
            "svcs_query_summary",
        ] {
            assert!(Dialect::Redshift.logs_other_sessions(view), "{view}");
            assert!(!Dialect::Postgres.logs_other_sessions(view), "{view}");
        }
        assert!(!Dialect::Redshift.logs_other_sessions("svv_tables"));
    }

    #[test]
    fn lexing_follows_what_the_connection_reports() {
        assert_eq!(Dialect::Postgres.lexing(Some("on")), Lexing::Standard);
        assert_eq!(Dialect::Postgres.lexing(Some("off")), Lexing::Backslash);
        assert_eq!(Dialect::Postgres.lexing(None), Lexing::Backslash);
        assert_eq!(Dialect::Redshift.lexing(Some("on")), Lexing::Backslash);
    }
}
