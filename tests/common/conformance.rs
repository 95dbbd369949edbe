//! The check behind the Redshift conformance tests (issue 15 item 6): the statements,
//! functions, types and settings of a SQL text against `src/dialect/redshift.toml`, where
//! each has the page of the Redshift Database Developer Guide it comes from, and against the
//! constructs Redshift lacks.

use serde::Deserialize;
use sqlparser::dialect::RedshiftSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::collections::BTreeMap;

#[derive(Deserialize)]
pub struct Known {
    statements: BTreeMap<String, String>,
    functions: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    settings: BTreeMap<String, String>,
    unsupported: BTreeMap<String, String>,
}

impl Known {
    pub fn load() -> Known {
        toml::from_str(include_str!("../../src/dialect/redshift.toml")).expect("redshift.toml")
    }

    fn knows_setting(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.settings
            .keys()
            .any(|known| match known.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => *known == name,
            })
    }
}

/// What in each of `texts` the file does not allow, each finding with its text, sorted and
/// without repeats; empty when everything is documented.
pub fn problems_in(texts: &[String]) -> Vec<String> {
    let known = Known::load();
    let mut problems: Vec<String> = texts
        .iter()
        .flat_map(|sql| {
            unknown_constructs(sql, &known)
                .into_iter()
                .map(move |p| format!("{p}\n    in: {sql}"))
        })
        .collect();
    problems.sort();
    problems.dedup();
    problems
}

/// Words that a `(` may follow without being a function call.
const NOT_CALLS: &[&str] = &[
    "all", "and", "any", "as", "exists", "from", "in", "join", "key", "not", "on", "or", "select",
    "then", "using", "values", "when", "where", "else", "with",
];

/// What in `sql` the file does not allow. A `$$` body (a procedure's) is checked too.
pub fn unknown_constructs(sql: &str, known: &Known) -> Vec<String> {
    let tokens: Vec<Token> = Tokenizer::new(&RedshiftSqlDialect {}, sql)
        .tokenize()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    // Unquoted words only: a quoted identifier is a name, never a keyword or a function.
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    let mut problems = Vec::new();
    let mut statement_start = true;
    // For each open parenthesis, whether it is CAST's (where `AS` names a type).
    let mut in_cast: Vec<bool> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::SemiColon => {
                statement_start = true;
                continue;
            }
            Token::LParen => in_cast.push(i > 0 && word(i - 1).as_deref() == Some("cast")),
            Token::RParen => {
                in_cast.pop();
            }
            Token::DollarQuotedString(body) => {
                problems.extend(unknown_constructs(&body.value, known));
            }
            Token::SingleQuotedString(name) => {
                // set_config('name', ...): the setting it names.
                let named = i >= 2
                    && matches!(tokens[i - 1], Token::LParen)
                    && word(i - 2).as_deref() == Some("set_config");
                if named && !known.knows_setting(name) {
                    problems.push(format!("setting {name:?} is not in redshift.toml"));
                }
            }
            _ => {}
        }
        let Some(value) = word(i) else {
            statement_start = false;
            continue;
        };
        if let Some(page) = known.unsupported.get(&value) {
            problems.push(format!("{value}: unsupported on Redshift ({page})"));
        }
        let called = matches!(tokens.get(i + 1), Some(Token::LParen));
        let names_type = i > 0
            && (matches!(tokens[i - 1], Token::DoubleColon)
                || (word(i - 1).as_deref() == Some("as") && in_cast.last() == Some(&true)));
        // `schema.name(`: one of the catalog's own objects, unless the schema is the system's.
        let qualified_by = match i >= 2 && matches!(tokens[i - 1], Token::Period) {
            true => Some(word(i - 2).unwrap_or_default()),
            false => None,
        };
        if statement_start {
            if !known.statements.contains_key(&value) {
                problems.push(format!("statement {value} is not in redshift.toml"));
            }
            if value == "set" {
                let mut name = word(i + 1).unwrap_or_default();
                if matches!(tokens.get(i + 2), Some(Token::Period)) {
                    name = format!("{name}.{}", word(i + 3).unwrap_or_default());
                }
                if !known.knows_setting(&name) {
                    problems.push(format!("setting {name} is not in redshift.toml"));
                }
            }
        } else if names_type {
            if !known.types.contains_key(&value) {
                problems.push(format!("type {value} is not in redshift.toml"));
            } else if matches!(value.as_str(), "numeric" | "decimal") && !called {
                problems.push(format!(
                    "a bare {value} has scale 0 on Redshift (r_Numeric_types201.html)"
                ));
            }
        } else if matches!(value.as_str(), "varying" | "precision")
            && word(i - 1).is_some_and(|w| known.types.contains_key(&w))
        {
            // The second word of `character varying(n)` or `double precision`.
        } else if called
            && !NOT_CALLS.contains(&value.as_str())
            && qualified_by
                .as_deref()
                .is_none_or(|schema| schema == "pg_catalog")
            && !known.functions.contains_key(&value)
            && !known.types.contains_key(&value)
        {
            problems.push(format!("function {value} is not in redshift.toml"));
        }
        statement_start = false;
    }
    problems
}
