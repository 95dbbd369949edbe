//! PostgreSQL name resolution for registered tables: identifier case folding, `search_path`
//! parsing, and matching an object name against the registry the way the server would.

use aho_corasick::AhoCorasick;
use sqlparser::ast::{Ident, ObjectName};
use std::collections::HashMap;

/// A schema-qualified relation name, as stored in the cluster's catalog (already folded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }
}

/// What the rewriter knows about a registered table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The data source's display name, used in error messages (`hr.employees`).
    pub data_source: String,
    /// The policy view that replaces it: the effective user's class view when there is one.
    pub view: QualifiedName,
    /// The view a SQL-level `PREPARE` reads. The prepared statement outlives the identity it
    /// was rewritten for (and is replayed on other backends), so it gets the canonical view,
    /// which decides per execution from the pinned `immuta.user`; a class view would show it
    /// nothing once the identity changes.
    pub prepared_view: QualifiedName,
    /// Whether clients may write to the raw table through the proxy.
    pub writable: bool,
}

/// The registered tables of one database, plus the schemas clients must never name.
#[derive(Debug, Clone)]
pub struct Registry {
    tables: HashMap<QualifiedName, Registered>,
    /// Lower-cased words that may name a registered table or a proxy schema.
    triggers: AhoCorasick,
    /// The triggers plus words the deny rules check call by call: any of them anywhere in a
    /// statement calls for a full parse. One pass over the text, as every statement pays it.
    parse_triggers: AhoCorasick,
    /// Whole names (lower-cased): registered tables, redveil's schemas and settings
    /// namespace, for the precise `is_named_in`.
    names: AhoCorasick,
    /// The same names, sorted, for whole-word lookups.
    sorted_names: Vec<String>,
    view_schema: String,
    /// Distinguishes this registry from every other in rewrite-cache keys.
    version: u64,
}

/// Words that call for a full parse even when no registered table is mentioned: functions
/// the deny rules judge call by call.
const GUARDED_WORDS: [&str; 18] = [
    "set_config",
    "current_setting",
    "settings",
    "xml",
    "dblink",
    "ts_stat",
    "standard_conforming_strings",
    "lo_",
    "loread",
    "lowrite",
    // deny::OTHER_SESSIONS.
    "pg_stat_",
    "pg_prepared_statement",
    // Redshift's query logs (`Dialect::logs_other_sessions`).
    "stl_",
    "stv_",
    "svl_",
    "svcs_",
    "sys_",
    "svv_query",
];

/// Schemas that belong to the proxy; clients reach them only through rewritten views.
pub const RESERVED_SCHEMAS: [&str; 4] = [
    "immuta_system",
    "immuta_functions",
    "immuta_procedures",
    "immuta_classes",
];

impl Registry {
    pub fn new(
        view_schema: &str,
        tables: impl IntoIterator<Item = (QualifiedName, Registered)>,
    ) -> Self {
        let tables: HashMap<_, _> = tables.into_iter().collect();
        let mut triggers: Vec<String> = tables
            .keys()
            .map(|q| q.name.to_lowercase())
            .chain(["immuta".to_string(), view_schema.to_lowercase()])
            .collect();
        triggers.sort();
        triggers.dedup();
        let automaton = |words: &[String]| {
            AhoCorasick::new(words).expect("a handful of short words always builds")
        };
        let parse_triggers: Vec<String> = triggers
            .iter()
            .cloned()
            .chain(GUARDED_WORDS.iter().map(|w| w.to_string()))
            .collect();
        let mut names: Vec<String> = tables
            .keys()
            .map(|q| q.name.to_lowercase())
            .chain([view_schema.to_lowercase(), "immuta".to_string()])
            .chain(RESERVED_SCHEMAS.iter().map(|s| s.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Self {
            tables,
            triggers: automaton(&triggers),
            parse_triggers: automaton(&parse_triggers),
            names: automaton(&names),
            sorted_names: names,
            view_schema: view_schema.to_string(),
            version: super::cache::next_catalog_version(),
        }
    }

    /// The data sources of `catalog` that live in `database` (those naming no database live
    /// in `default_database`, the backend's), each mapped to its class view in
    /// `class_views` (by data source id) or, when it has none there, its canonical view.
    pub fn from_catalog(
        catalog: &crate::policy::Catalog,
        database: &str,
        default_database: &str,
        class_views: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        let entries = catalog.data_sources.iter().filter_map(|source| {
            let db = source.table.database.as_deref().unwrap_or(default_database);
            (db == database).then(|| {
                let canonical = QualifiedName::new(catalog.view_schema.clone(), source.view_name());
                (
                    QualifiedName::new(source.table.schema.clone(), source.table.table.clone()),
                    Registered {
                        data_source: source.table.id(),
                        view: match class_views.get(&source.table.id()) {
                            Some(class) => QualifiedName::new(
                                crate::policy::classes::CLASSES_SCHEMA,
                                class.clone(),
                            ),
                            None => canonical.clone(),
                        },
                        prepared_view: canonical,
                        writable: false,
                    },
                )
            })
        });
        Self::new(&catalog.view_schema, entries)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn view_schema(&self) -> &str {
        &self.view_schema
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn get(&self, name: &QualifiedName) -> Option<&Registered> {
        self.tables.get(name)
    }

    /// Whether `lowercase_sql` contains any word that could name a registered table or a
    /// proxy schema. A cheap over-approximation: a miss means the statement is forwarded as is.
    pub fn is_mentioned_in(&self, lowercase_sql: &str) -> bool {
        self.triggers.is_match(lowercase_sql)
    }

    /// Whether a statement the proxy cannot parse names a registered table, a redveil schema
    /// or redveil's settings: as a word or quoted identifier (any case), or as a whole word
    /// in a string literal that may later run as SQL. Comments and longer words that merely
    /// contain a name (`immutable`, `employees_archive`) do not count.
    pub fn is_named_in(&self, statement: &str) -> bool {
        super::lexer::tokens(statement).any(|token| match token {
            super::lexer::Token::Word(w) => self.is_name(&w.to_lowercase()),
            super::lexer::Token::Quoted(q) => self.is_name(&q.to_lowercase()),
            super::lexer::Token::Literal(text) => self.is_named_in_text(text),
            super::lexer::Token::Symbol(_) => false,
        })
    }

    fn is_name(&self, word: &str) -> bool {
        self.sorted_names
            .binary_search_by(|n| n.as_str().cmp(word))
            .is_ok()
    }

    /// Whether `text` (a string literal, say) contains one of the names as a whole word.
    pub fn is_named_in_text(&self, text: &str) -> bool {
        let lowercase = text.to_lowercase();
        let bytes = lowercase.as_bytes();
        let is_word_byte = |i: usize| {
            bytes
                .get(i)
                .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80)
        };
        self.names.find_overlapping_iter(&lowercase).any(|m| {
            let preceded = m.start() > 0 && is_word_byte(m.start() - 1);
            !preceded && !is_word_byte(m.end())
        })
    }

    /// Whether `lowercase_sql` must be parsed: it may name a registered table or a proxy
    /// schema, or mentions a function the deny rules check call by call.
    pub fn needs_parse(&self, lowercase_sql: &str) -> bool {
        self.parse_triggers.is_match(lowercase_sql)
    }

    /// Whether a raw table of this name (in any schema) is registered.
    pub fn has_table_named(&self, name: &str) -> bool {
        self.tables.keys().any(|q| q.name == name)
    }
}

/// The name-resolution context of one statement.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub registry: &'a Registry,
    /// The database the session is connected to (three-part names must match it).
    pub database: &'a str,
    /// The effective search path, `$user` already substituted, without pg_catalog.
    pub search_path: &'a [String],
    /// The pool's login role, what `$user` means when a statement sets the search path.
    pub backend_role: &'a str,
    /// The engine behind the proxy.
    pub dialect: crate::dialect::Dialect,
    /// How the session's backend connection reads plain string literals.
    pub lexing: crate::dialect::Lexing,
}

impl Scope<'_> {
    /// Whether the rules that only protect registered data apply: some table of this
    /// database is registered. Where none is, there is nothing for them to protect, and a
    /// session must look exactly like a direct connection.
    pub fn guarded(&self) -> bool {
        !self.registry.is_empty()
    }

    /// Resolves a relation name; `None` when it names no registered table.
    pub fn resolve(&self, name: &ObjectName) -> Option<&Registered> {
        let parts = idents(name)?;
        match parts.as_slice() {
            [table] => self.search_path.iter().find_map(|schema| {
                self.registry
                    .get(&QualifiedName::new(schema.clone(), fold(table)))
            }),
            [schema, table] => self
                .registry
                .get(&QualifiedName::new(fold(schema), fold(table))),
            [database, schema, table] if fold(database) == self.database => self
                .registry
                .get(&QualifiedName::new(fold(schema), fold(table))),
            _ => None,
        }
    }

    /// The folded schema a name points into, when it is qualified.
    pub fn schema_of(name: &ObjectName) -> Option<String> {
        let parts = idents(name)?;
        match parts.as_slice() {
            [schema, _] | [_, schema, _] => Some(fold(schema)),
            _ => None,
        }
    }
}

fn idents(name: &ObjectName) -> Option<Vec<&Ident>> {
    name.0.iter().map(|p| p.as_ident()).collect()
}

/// An identifier as PostgreSQL stores it: unquoted names are folded to lower case (ASCII only,
/// as the server does for UTF-8 databases); quoted names are kept exactly.
pub fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

/// Quotes an identifier when PostgreSQL would need it to keep its spelling.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The schemas of a `search_path` value as the server parses a raw list (startup parameters,
/// `options=-c`): comma-separated, unquoted names folded, `$user` replaced by `login_role`.
pub fn parse_search_path_list(raw: &str, login_role: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.next_if_eq(&'"').is_some() {
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                item.push(c.to_ascii_lowercase());
            }
            item = item.trim_end().to_string();
        }
        if !item.is_empty() {
            out.push(if item == "$user" {
                login_role.to_string()
            } else {
                item
            });
        }
        while chars.next_if(|c| *c != ',').is_some() {}
        if chars.next().is_none() {
            return out;
        }
    }
}

/// The schemas of a `search_path` value given in SQL (`SET search_path TO a, "B", 'c'`): a
/// string literal is one schema name, exactly as written, like the server's GUC_LIST_QUOTE.
pub fn parse_search_path_sql(value: &str, login_role: &str) -> Vec<String> {
    let mut raw = String::new();
    for (i, item) in split_top_level_commas(value).into_iter().enumerate() {
        if i > 0 {
            raw.push(',');
        }
        let item = item.trim();
        let literal = item
            .strip_prefix('\'')
            .or_else(|| item.strip_prefix("E'").or_else(|| item.strip_prefix("e'")))
            .and_then(|s| s.strip_suffix('\''));
        match literal {
            Some(text) => {
                let text = text.replace("''", "'");
                raw.push_str(&format!("\"{}\"", text.replace('"', "\"\"")));
            }
            None if item.eq_ignore_ascii_case("default") => {
                return parse_search_path_list(DEFAULT_SEARCH_PATH, login_role)
            }
            None => raw.push_str(item),
        }
    }
    parse_search_path_list(&raw, login_role)
}

/// PostgreSQL's built-in default.
pub const DEFAULT_SEARCH_PATH: &str = "\"$user\", public";

fn split_top_level_commas(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quote) = (0, None);
    for (i, c) in value.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_lists_fold_and_substitute_user() {
        assert_eq!(
            parse_search_path_list("\"$user\", Public,\"Hr\" , x", "redveil_query"),
            ["redveil_query", "public", "Hr", "x"]
        );
        assert_eq!(parse_search_path_list("", "u"), Vec::<String>::new());
    }

    #[test]
    fn sql_values_keep_literals_exact() {
        assert_eq!(parse_search_path_sql("hr, public", "u"), ["hr", "public"]);
        assert_eq!(parse_search_path_sql("'Hr', HR", "u"), ["Hr", "hr"]);
        assert_eq!(parse_search_path_sql("'a, b'", "u"), ["a, b"]);
        assert_eq!(parse_search_path_sql("DEFAULT", "u"), ["u", "public"]);
    }

    #[test]
    fn quoting_identifiers() {
        assert_eq!(quote_ident("hr_employees"), "hr_employees");
        assert_eq!(quote_ident("Hr"), "\"Hr\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
