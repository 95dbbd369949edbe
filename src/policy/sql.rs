//! SQL text helpers for the compiler and sync: identifier quoting, parameter lists, parsing
//! of `[database.]schema.table`, and the check that a row rule's predicate is one expression.
//!
//! Identifiers are always double-quoted in generated SQL, so case and reserved words never
//! change their meaning. Literals differ between the engines (a backslash escapes on
//! Redshift): the `dialect` room writes them.

use super::model::TableName;
use sqlparser::dialect::{Dialect, PostgreSqlDialect, RedshiftSqlDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// `"name"`, with embedded quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// `($first, $first+1, …)`: `count` bound parameters. Lists of values are bound one by one
/// rather than as an array, which Redshift lacks (c_unsupported-postgresql-datatypes.html).
pub fn parameter_list(first: usize, count: usize) -> String {
    let items: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    format!("({})", items.join(", "))
}

/// Parses `[database.]schema.table`: unquoted parts fold to lower case, `"Quoted"` parts
/// keep their case and may contain dots.
pub fn parse_table_name(text: &str) -> Result<TableName, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("unterminated quoted name in {text:?}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$') {
                    return Err(format!(
                        "unexpected {c:?} in {text:?}; quote names with special characters"
                    ));
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(format!("empty name in {text:?}"));
        }
        parts.push(part);
        match chars.next() {
            Some('.') => continue,
            None => break,
            Some(c) => return Err(format!("unexpected {c:?} in {text:?}")),
        }
    }
    match parts.as_slice() {
        [schema, table] => Ok(TableName {
            database: None,
            schema: schema.clone(),
            table: table.clone(),
        }),
        [database, schema, table] => Ok(TableName {
            database: Some(database.clone()),
            schema: schema.clone(),
            table: table.clone(),
        }),
        _ => Err(format!("expected [database.]schema.table, got {text:?}")),
    }
}

/// Accepts exactly one SQL expression: the predicate is pasted into the view's WHERE, so
/// anything else (a second statement, an unbalanced parenthesis) must be refused here. It
/// must be one expression however the cluster reads its literals (a backslash escapes on
/// Redshift and where `standard_conforming_strings` is off), and the cluster is not known
/// when the catalog is read, so both readings are checked.
pub fn check_predicate(predicate: &str) -> Result<(), String> {
    check_predicate_in(&PostgreSqlDialect {}, predicate)?;
    check_predicate_in(&RedshiftSqlDialect {}, predicate).map_err(|e| {
        format!("{e} (where a backslash in a string escapes the next character, as on Redshift)")
    })
}

fn check_predicate_in(dialect: &dyn Dialect, predicate: &str) -> Result<(), String> {
    let mut parser = Parser::new(dialect)
        .try_with_sql(predicate)
        .map_err(|e| format!("not a SQL expression: {e}"))?;
    parser
        .parse_expr()
        .map_err(|e| format!("not a SQL expression: {e}"))?;
    match parser.peek_token().token {
        Token::EOF => Ok(()),
        other => Err(format!(
            "not a single SQL expression: unexpected {other} after it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_fold_and_quote_like_postgres() {
        let t = parse_table_name("HR.Employees").unwrap();
        assert_eq!(
            (t.database, t.schema.as_str(), t.table.as_str()),
            (None, "hr", "employees")
        );
        let t = parse_table_name("demo.\"My.Schema\".\"T\"\"x\"").unwrap();
        assert_eq!(t.database.as_deref(), Some("demo"));
        assert_eq!((t.schema.as_str(), t.table.as_str()), ("My.Schema", "T\"x"));
        assert_eq!(
            parse_table_name("employees").unwrap_err(),
            "expected [database.]schema.table, got \"employees\""
        );
        assert_eq!(
            parse_table_name("hr..x").unwrap_err(),
            "empty name in \"hr..x\""
        );
        assert_eq!(
            parse_table_name("hr.emp loyees").unwrap_err(),
            "unexpected ' ' in \"hr.emp loyees\"; quote names with special characters"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(qualified("hr", "we\"ird"), "\"hr\".\"we\"\"ird\"");
        assert_eq!(parameter_list(2, 3), "($2, $3, $4)");
    }

    #[test]
    fn predicates_must_be_one_expression() {
        assert_eq!(check_predicate("dept <> 'hr' AND salary < 100000"), Ok(()));
        assert!(check_predicate("true; DROP TABLE x")
            .unwrap_err()
            .starts_with("not a single SQL expression"));
        assert!(check_predicate("(a = 1")
            .unwrap_err()
            .starts_with("not a SQL expression"));
        // One expression to PostgreSQL, an unterminated string to Redshift.
        let error = check_predicate(r"name <> 'x\' OR name = ''").unwrap_err();
        assert!(error.contains("as on Redshift"), "{error}");
    }
}
