//! Every spelling that differs between Amazon Redshift and PostgreSQL, and how client SQL is
//! read on each (see `../shared/REDSHIFT-GAP.md` for the constructs and AWS's pages). Other
//! rooms ask a [`Dialect`] and never branch on the engine themselves. No state, no I/O.

use serde::Deserialize;

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
    fn lexing_follows_what_the_connection_reports() {
        assert_eq!(Dialect::Postgres.lexing(Some("on")), Lexing::Standard);
        assert_eq!(Dialect::Postgres.lexing(Some("off")), Lexing::Backslash);
        assert_eq!(Dialect::Postgres.lexing(None), Lexing::Backslash);
        assert_eq!(Dialect::Redshift.lexing(Some("on")), Lexing::Backslash);
    }
}
