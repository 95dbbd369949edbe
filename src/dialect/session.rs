//! How a pooled connection's session is brought back between clients, in each engine's SQL.
//! Where Redshift has no command to clean something (CLOSE ALL, UNLISTEN, DISCARD, DEALLOCATE
//! ALL: none is in its command list, c_SQL_commands.html), the answer is `None`: the
//! connection is closed instead of cleaned, and a fresh one serves the client.

use super::Dialect;

/// What another client of the same identity may have left and the proxy does not track:
/// cursors WITH HOLD, LISTENs, temporary objects, sequence state, session advisory locks, and
/// every setting changed behind the proxy's back. The reset comes first, so that no setting
/// the last client left (a `statement_timeout` of 1 ms, say) cuts the rest short.
const POSTGRES_CLEAN: &str = "SET SESSION AUTHORIZATION DEFAULT;RESET ALL;RESET ROLE;CLOSE ALL;\
                              UNLISTEN *;DISCARD TEMP;DISCARD SEQUENCES;\
                              SELECT pg_catalog.pg_advisory_unlock_all();";

/// Back to the login's settings. RESET ALL leaves the role and session authorization alone;
/// where no table is registered a client may set them (the proxy replays them as settings).
const POSTGRES_RESET: &str = "SET SESSION AUTHORIZATION DEFAULT;RESET ALL;RESET ROLE;";

/// Redshift's result cache off for the session (see `Dialect::owns_setting`); a macro so
/// `REDSHIFT_RESET` can include it at compile time.
macro_rules! redshift_cache_off {
    () => {
        "SET enable_result_cache_for_session TO off"
    };
}

/// RESET ALL also clears session context variables and turns the result cache back on
/// (r_RESET.html), so the cache is turned off again at once. Redshift's SET SESSION
/// AUTHORIZATION needs a superuser (r_SET_SESSION_AUTHORIZATION.html); no client can have
/// used it through the pool's login.
const REDSHIFT_RESET: &str = concat!("RESET ALL;", redshift_cache_off!(), ";");

impl Dialect {
    /// What opens sync's transaction. PostgreSQL: standard-conforming strings for the
    /// literals it writes (`Dialect::literal` relies on it), and an advisory lock on `key`
    /// that serializes syncs of one database. Redshift has neither (its literals always
    /// escape, and advisory locks are unsupported: c_unsupported-postgresql-functions.html):
    /// it locks the registry table once it exists (`sync_lock`).
    pub fn sync_preamble(self, key: i64) -> Option<String> {
        match self {
            Dialect::Postgres => Some(format!(
                "SET LOCAL standard_conforming_strings = on; SELECT pg_advisory_xact_lock({key})"
            )),
            Dialect::Redshift => None,
        }
    }

    /// The lock that serializes syncs once `registry` (a table sync keeps) exists
    /// (r_LOCK.html); `None` where the preamble took one.
    pub fn sync_lock(self, registry: &str) -> Option<String> {
        match self {
            Dialect::Postgres => None,
            Dialect::Redshift => Some(format!("LOCK {registry}")),
        }
    }

    /// A setting's value, or NULL where it was never set. The second argument of
    /// `current_setting` is `missing_ok` on PostgreSQL and `error_if_undefined` on Redshift
    /// (r_CURRENT_SETTING.html).
    /// Unqualified: views resolve it once, when sync creates them.
    pub fn current_setting_or_null(self, name: &str) -> String {
        format!(
            "current_setting({}, {})",
            self.literal(name),
            self.missing_ok()
        )
    }

    /// `current_setting`'s second argument for "NULL if never set".
    fn missing_ok(self) -> &'static str {
        match self {
            Dialect::Postgres => "true",
            Dialect::Redshift => "false",
        }
    }

    /// Built-in functions are called qualified on PostgreSQL, where a client's schema earlier
    /// in its search_path could otherwise hold a function of the same name. Redshift's pages
    /// call them bare, and clients cannot create functions there (`refuses_client_functions`).
    fn catalog_prefix(self) -> &'static str {
        match self {
            Dialect::Postgres => "pg_catalog.",
            Dialect::Redshift => "",
        }
    }

    /// One statement that sets each of `names` for the session to the bound parameters `$1`,
    /// `$2`, ... (r_SET_CONFIG.html: session context variables on Redshift).
    pub fn set_bound_settings(self, names: &[&str]) -> String {
        let calls: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                format!(
                    "{}set_config({}, ${}, false)",
                    self.catalog_prefix(),
                    self.literal(name),
                    i + 1
                )
            })
            .collect();
        format!("SELECT {}", calls.join(", "))
    }

    /// Copies the setting `from` into `to` (a staged identity made current).
    pub fn copy_setting(self, to: &str, from: &str) -> String {
        let prefix = self.catalog_prefix();
        format!(
            "SELECT {prefix}set_config({}, {prefix}current_setting({}, {}), false)",
            self.literal(to),
            self.literal(from),
            self.missing_ok(),
        )
    }

    /// What every pooled connection runs after login and after anything that resets its
    /// settings (RESET ALL turns Redshift's result cache back on).
    pub fn session_setup(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => None,
            Dialect::Redshift => Some(redshift_cache_off!()),
        }
    }

    /// Statements that bring a connection back to its login's settings.
    pub fn reset_sql(self) -> &'static str {
        match self {
            Dialect::Postgres => POSTGRES_RESET,
            Dialect::Redshift => REDSHIFT_RESET,
        }
    }

    /// Statements that also clean what another client left; `None`: close the connection.
    pub fn clean_sql(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some(POSTGRES_CLEAN),
            Dialect::Redshift => None,
        }
    }

    /// Drops every SQL-level prepared statement; `None`: Redshift deallocates by name only
    /// (r_DEALLOCATE.html), and the names another client used are not known.
    pub fn deallocate_all(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("DEALLOCATE ALL;"),
            Dialect::Redshift => None,
        }
    }

    /// The complete reset of a connection given back by a client (session mode), each its
    /// own query; `None`: close the connection.
    pub fn discard_all(self) -> Option<[&'static str; 2]> {
        match self {
            Dialect::Postgres => Some(["RESET ALL", "DISCARD ALL"]),
            Dialect::Redshift => None,
        }
    }

    /// Sets `name` to `value` as the server takes a startup parameter, raw (`hr,public` is a
    /// list of two schemas, where `SET search_path = 'hr,public'` names one). Redshift
    /// documents `SET_CONFIG` unqualified (r_SET_CONFIG.html) and reads its literals with
    /// backslash escapes.
    pub fn set_config_sql(self, name: &str, value: &str) -> String {
        match self {
            Dialect::Postgres => format!(
                "SELECT pg_catalog.set_config({}, {}, false)",
                super::quote_literal(name),
                super::quote_literal(value)
            ),
            Dialect::Redshift => format!(
                "SELECT set_config({}, {}, false)",
                self.literal(name),
                self.literal(value)
            ),
        }
    }

    /// Whether a client's startup setting is given to the engine: `Ok(false)` when the
    /// engine already has it. Redshift speaks UTF-8 only and documents no `client_encoding`
    /// setting (cm_chap_ConfigurationRef.html): a client asking for UTF-8 needs nothing sent,
    /// and one asking for another encoding cannot be served.
    pub fn takes_startup_setting(self, name: &str, value: &str) -> Result<bool, String> {
        if self == Dialect::Postgres || !name.eq_ignore_ascii_case("client_encoding") {
            return Ok(true);
        }
        let normalized: String = value
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        match normalized.as_str() {
            "utf8" | "unicode" => Ok(false),
            _ => Err(format!(
                "client_encoding {value:?} is not available: Amazon Redshift speaks UTF8 only"
            )),
        }
    }

    /// A setting's name as SET takes it, or `None` if this engine cannot take it. PostgreSQL:
    /// each dotted part quoted. Redshift refuses delimited identifiers in session variable
    /// names and allows one dot (r_SET.html), so the parts must be plain identifiers.
    pub fn setting_name(self, name: &str) -> Option<String> {
        match self {
            Dialect::Postgres => Some(
                name.split('.')
                    .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            Dialect::Redshift => {
                let parts: Vec<&str> = name.split('.').collect();
                let plain = |part: &&str| {
                    part.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                };
                (parts.len() <= 2 && parts.iter().all(plain)).then(|| name.to_ascii_lowercase())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redshift_closes_what_it_cannot_clean() {
        assert_eq!(Dialect::Redshift.clean_sql(), None);
        assert_eq!(Dialect::Redshift.deallocate_all(), None);
        assert_eq!(Dialect::Redshift.discard_all(), None);
        assert!(Dialect::Postgres
            .clean_sql()
            .is_some_and(|sql| sql.contains("DISCARD TEMP")));
    }

    #[test]
    fn startup_settings_each_engine_takes() {
        assert_eq!(
            Dialect::Postgres.set_config_sql("search_path", r"a\b"),
            r"SELECT pg_catalog.set_config('search_path', E'a\\b', false)"
        );
        assert_eq!(
            Dialect::Redshift.set_config_sql("search_path", r"a\b"),
            r"SELECT set_config('search_path', 'a\\b', false)"
        );
        assert_eq!(
            Dialect::Postgres.takes_startup_setting("client_encoding", "LATIN1"),
            Ok(true)
        );
        assert_eq!(
            Dialect::Redshift.takes_startup_setting("Client_Encoding", "utf-8"),
            Ok(false)
        );
        assert_eq!(
            Dialect::Redshift.takes_startup_setting("TimeZone", "UTC"),
            Ok(true)
        );
        assert!(Dialect::Redshift
            .takes_startup_setting("client_encoding", "LATIN1")
            .unwrap_err()
            .contains("UTF8 only"));
    }

    #[test]
    fn setting_names_as_each_engine_takes_them() {
        assert_eq!(
            Dialect::Postgres.setting_name("my.x").as_deref(),
            Some("\"my\".\"x\"")
        );
        assert_eq!(
            Dialect::Redshift.setting_name("App.User_1").as_deref(),
            Some("app.user_1")
        );
        assert_eq!(Dialect::Redshift.setting_name("a.b.c"), None);
        assert_eq!(Dialect::Redshift.setting_name("a.\"b c\""), None);
    }
}
