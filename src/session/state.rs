//! The replayable part of a session: settings and SQL-level prepared statements.

use crate::dialect::quote_literal;
use crate::rewrite::SessionCommand;
use bytes::Bytes;
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// A client's named protocol-level statement, kept so it can be prepared again on another
/// backend connection under the proxy's name.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Name used on backend connections (derived from the text, shared across clients).
    pub backend_name: String,
    /// The Parse message, already renamed to `backend_name`.
    pub parse: Bytes,
    /// What executing it does to session state, if anything.
    pub command: Option<SessionCommand>,
    /// For a statement rewritten to policy views: the client's own Parse and the policy
    /// generation and effective user it was rewritten for. Views differ per user (class
    /// views), so it is rewritten again when either changes.
    pub rewritten_for: Option<RewrittenFor>,
    /// The shape the client knows: that of the preparation made for its Parse. Wherever the
    /// statement is prepared again, it serves the client only in this shape.
    pub shape: super::ShapeCell,
}

#[derive(Debug, Clone)]
pub struct RewrittenFor {
    pub client_parse: Bytes,
    /// How `client_parse`'s text was read.
    pub encoding: crate::protocol::encoding::TextEncoding,
    pub generation: u64,
    pub user: String,
}

/// A backend connection's settings match no state: the next statement replays them all.
pub const SETTINGS_UNKNOWN: u64 = u64::MAX;

/// Settings and SQL-prepared statements, in replay order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionState {
    startup: BTreeMap<String, String>,
    /// Startup values as the client sent them (the server parses these as raw lists).
    startup_raw: BTreeMap<String, String>,
    /// Setting name → SQL value text.
    settings: BTreeMap<String, String>,
    /// Settings last set by `set_config` (`SessionCommand::SetRaw`): name → raw value.
    set_raw: BTreeMap<String, String>,
    /// Prepared statement name → its PREPARE statement.
    prepared: BTreeMap<String, String>,
}

impl SessionState {
    /// Startup parameters become settings; their values are plain strings, so quote them.
    pub fn from_startup(params: Vec<(String, String)>) -> Self {
        let startup_raw: BTreeMap<_, _> = params
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect();
        let startup: BTreeMap<_, _> = startup_raw
            .iter()
            .map(|(k, v)| (k.clone(), quote_literal(v)))
            .collect();
        Self {
            settings: startup.clone(),
            startup,
            startup_raw,
            set_raw: BTreeMap::new(),
            prepared: BTreeMap::new(),
        }
    }

    /// The schemas of the session's `search_path`, `$user` meaning `backend_role`.
    pub fn search_path(&self, backend_role: &str) -> Vec<String> {
        use crate::rewrite::{parse_search_path_list, parse_search_path_sql, DEFAULT_SEARCH_PATH};
        if let Some(raw) = self.raw_value("search_path") {
            return parse_search_path_list(raw, backend_role);
        }
        match self.settings.get("search_path") {
            None => parse_search_path_list(DEFAULT_SEARCH_PATH, backend_role),
            Some(v) => parse_search_path_sql(v, backend_role),
        }
    }

    /// Whether `command` puts a setting back to its startup value, which the server does not
    /// know: on a pooled connection its RESET goes to the server's default instead.
    pub fn restores_startup_value(&self, command: &SessionCommand) -> bool {
        match command {
            SessionCommand::Reset { name } | SessionCommand::SetDefault { name } => {
                self.startup.contains_key(name)
            }
            SessionCommand::ResetAll | SessionCommand::DiscardAll => !self.startup.is_empty(),
            _ => false,
        }
    }

    /// 0 for a state equal to a fresh pool connection's; otherwise a hash of the state, never
    /// [`SETTINGS_UNKNOWN`].
    pub fn fingerprint(&self) -> u64 {
        if self.settings.is_empty() && self.prepared.is_empty() {
            return 0;
        }
        let mut h = DefaultHasher::new();
        self.settings.hash(&mut h);
        self.prepared.hash(&mut h);
        h.finish().clamp(1, SETTINGS_UNKNOWN - 1)
    }

    /// The value of `name` as the server took it raw, where it came that way: set by
    /// `set_config`, or given at startup and not changed since.
    pub fn raw_value(&self, name: &str) -> Option<&str> {
        if let Some(raw) = self.set_raw.get(name) {
            return Some(raw);
        }
        let startup = self.startup.get(name)?;
        (self.settings.get(name) == Some(startup))
            .then(|| self.startup_raw.get(name).map(String::as_str))
            .flatten()
    }

    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn prepared(&self) -> impl Iterator<Item = &str> {
        self.prepared.values().map(String::as_str)
    }

    pub fn apply(&mut self, command: SessionCommand) {
        match command {
            SessionCommand::Set { name, value } => {
                self.set_raw.remove(&name);
                self.settings.insert(name, value);
            }
            SessionCommand::SetRaw { name, value } => {
                self.settings.insert(name.clone(), quote_literal(&value));
                self.set_raw.insert(name, value);
            }
            SessionCommand::Characteristics(settings) => {
                for (name, _) in &settings {
                    self.set_raw.remove(name);
                }
                self.settings.extend(settings)
            }
            SessionCommand::Reset { name } | SessionCommand::SetDefault { name } => {
                self.set_raw.remove(&name);
                match self.startup.get(&name) {
                    Some(v) => {
                        self.settings.insert(name, v.clone());
                    }
                    None => {
                        self.settings.remove(&name);
                    }
                }
            }
            SessionCommand::ResetAll => {
                self.settings = self.startup.clone();
                self.set_raw.clear();
            }
            SessionCommand::Prepare { name, sql } => {
                self.prepared.insert(name, sql);
            }
            SessionCommand::Deallocate { name } => {
                self.prepared.remove(&name);
            }
            SessionCommand::DeallocateAll => self.prepared.clear(),
            SessionCommand::DiscardAll => {
                self.settings = self.startup.clone();
                self.set_raw.clear();
                self.prepared.clear();
            }
            // Transaction commands act on which changes are applied, not on the state.
            SessionCommand::Untracked { .. } | SessionCommand::Transaction(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_tracks_changes_and_reset() {
        let fresh = SessionState::default();
        assert_eq!(fresh.fingerprint(), 0);
        let mut s = SessionState::from_startup(vec![("TimeZone".into(), "UTC".into())]);
        let base = s.fingerprint();
        assert_ne!(base, 0);
        s.apply(SessionCommand::Set {
            name: "work_mem".into(),
            value: "'1MB'".into(),
        });
        assert_ne!(s.fingerprint(), base);
        s.apply(SessionCommand::ResetAll);
        assert_eq!(s.fingerprint(), base);
        assert_eq!(s.settings().collect::<Vec<_>>(), [("timezone", "'UTC'")]);
    }

    #[test]
    fn search_path_follows_startup_and_set() {
        let mut s = SessionState::from_startup(vec![("search_path".into(), "Hr,public".into())]);
        assert_eq!(s.search_path("q"), ["hr", "public"]);
        s.apply(SessionCommand::Set {
            name: "search_path".into(),
            value: "'Hr', \"$user\"".into(),
        });
        assert_eq!(s.search_path("q"), ["Hr", "q"]);
        s.apply(SessionCommand::ResetAll);
        assert_eq!(s.search_path("q"), ["hr", "public"]);
        assert_eq!(SessionState::default().search_path("q"), ["q", "public"]);
    }

    #[test]
    fn set_config_values_stay_raw_until_set_again() {
        let mut s = SessionState::default();
        s.apply(SessionCommand::SetRaw {
            name: "search_path".into(),
            value: "hr, public".into(),
        });
        assert_eq!(s.search_path("q"), ["hr", "public"]);
        assert_eq!(s.raw_value("search_path"), Some("hr, public"));
        s.apply(SessionCommand::SetRaw {
            name: "search_path".into(),
            value: String::new(),
        });
        assert!(s.search_path("q").is_empty());
        s.apply(SessionCommand::Set {
            name: "search_path".into(),
            value: "''".into(),
        });
        assert_eq!(s.raw_value("search_path"), None);
    }
}
