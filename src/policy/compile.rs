//! The view compiler: a data source and its table's columns in, `CREATE VIEW` out.
//!
//! Shape (one per data source, `<view schema>.<schema>_<table>`):
//!
//! ```sql
//! CREATE VIEW "immuta"."hr_employees" WITH (security_barrier) AS
//! SELECT "employees"."id",
//!        CASE WHEN immuta_access.immuta_flags LIKE '1%'
//!             THEN "employees"."ssn" ELSE CAST(NULL AS text) END AS "ssn", …
//! FROM "hr"."employees" AS "employees"
//! CROSS JOIN (SELECT immuta_row.flags AS immuta_flags, immuta_row.attribute_values AS immuta_values,
//!                    immuta_row.salt AS immuta_salt
//!             FROM "immuta_system"."session_tokens" AS immuta_token
//!             JOIN "immuta_system"."profile_access" AS immuta_row ON immuta_row.user_name = immuta_token.user_name
//!             WHERE immuta_token.token = current_setting('immuta.token', true)
//!               AND immuta_row.data_source = 'hr.employees') AS immuta_access
//! WHERE (immuta_access.immuta_flags LIKE '1%'
//!        OR strpos(immuta_access.immuta_values, chr(31) || 'region' || chr(30)
//!                  || CAST("employees"."region" AS text) || chr(31)) > 0)
//! ```
//!
//! Every column of the table appears, in table order, under its own name and type (hash →
//! text). The user is found through the secret token the proxy pins (see tokens.rs), and
//! their entitlements are one precomputed row (see entitle.rs), joined once, so a statement
//! pays one small lookup whatever the number of masks and rules; the join is also the
//! subscription check (no valid token or no row, no rows). The table keeps its own name as alias so a row
//! rule's predicate may qualify columns with it. `security_barrier` stops PostgreSQL from
//! running a client's predicate (a leaky function) before the view's own WHERE and masks.

use super::classes;
use super::entitle::AccessPlan;
use super::masks::{self, Column, Context};
use super::model::{DataSource, MaskMethod, RowFilter};
use super::sql::{ident, qualified};
use super::tokens;
use crate::dialect::Dialect;
use std::fmt;

/// A compiled view.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledView {
    /// `"immuta"."hr_employees"`.
    pub view: String,
    /// The `CREATE VIEW` statement.
    pub sql: String,
    /// The view's columns as (name, type), in order.
    pub columns: Vec<(String, String)>,
    pub plan: AccessPlan,
}

/// A policy item that does not fit the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Config key path of the item, e.g. `data_sources[0].masks[1]`.
    pub item: String,
    /// The table, e.g. `hr.employees`.
    pub table: String,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.item, self.table, self.message)
    }
}

impl std::error::Error for CompileError {}

/// How the compiled SQL learns the user's flags (salt and attribute values always come from
/// the joined entitlement row).
enum Entitlements<'a> {
    /// The canonical view: read per statement from the joined row, so each condition becomes
    /// a runtime test.
    Joined,
    /// A class view: the flags are fixed at compile time; the join admits only users whose
    /// row has exactly these flags.
    Fixed { flags: &'a str },
}

/// The entitlement row of the session's user for `ds`, as the subquery `immuta_access`.
fn access_subquery(dialect: Dialect, ds: &DataSource, flags: Option<&str>) -> String {
    let (select, only_class) = match flags {
        None => ("immuta_row.flags AS immuta_flags, ", String::new()),
        Some(flags) => (
            "",
            format!(" AND immuta_row.flags = {}", dialect.literal(flags)),
        ),
    };
    format!(
        "CROSS JOIN (SELECT {select}immuta_row.attribute_values AS immuta_values, immuta_row.salt AS immuta_salt\n\
         \x20           FROM {}{only_class}) AS immuta_access",
        tokens::access_join_sql(dialect, &dialect.literal(&ds.table.key())),
    )
}

/// Column list and row filters of a view over `ds`.
struct Body {
    select: Vec<String>,
    filters: Vec<String>,
    columns: Vec<(String, String)>,
}

/// Compiles the view of `ds` over `columns` (the table's, in order).
pub fn compile(
    dialect: Dialect,
    ds: &DataSource,
    view_schema: &str,
    columns: &[Column],
) -> Result<CompiledView, CompileError> {
    let plan = AccessPlan::of(ds);
    let body = body(dialect, ds, &plan, columns, &Entitlements::Joined)?;
    let alias = ident(&ds.table.table);
    let view = qualified(view_schema, &ds.view_name());
    let mut sql = format!(
        "CREATE VIEW {view}{} AS\nSELECT {}\nFROM {} AS {alias}\n{}",
        dialect.view_options(),
        body.select.join(",\n       "),
        qualified(&ds.table.schema, &ds.table.table),
        access_subquery(dialect, ds, None),
    );
    push_filters(&mut sql, &body.filters);
    Ok(CompiledView {
        view,
        sql,
        columns: body.columns,
        plan,
    })
}

/// Compiles the class view of `ds` for users whose flags are `flags` (see classes.rs): every
/// condition already decided, so no CASE; only the masks and row rules that apply to the
/// class remain, and the entitlement join admits only the class's users.
pub fn compile_class(
    dialect: Dialect,
    ds: &DataSource,
    flags: &str,
    columns: &[Column],
) -> Result<CompiledView, CompileError> {
    let plan = AccessPlan::of(ds);
    if flags.len() != plan.conditions.len() || flags.bytes().any(|b| b != b'0' && b != b'1') {
        return Err(CompileError {
            item: ds.origin.clone(),
            table: ds.table.key(),
            message: format!(
                "class {flags:?} does not fit the data source's {} conditions",
                plan.conditions.len()
            ),
        });
    }
    let body = body(dialect, ds, &plan, columns, &Entitlements::Fixed { flags })?;
    let alias = ident(&ds.table.table);
    let view = qualified(
        classes::CLASSES_SCHEMA,
        &classes::class_view_name(ds, flags),
    );
    let mut sql = format!(
        "CREATE VIEW {view}{} AS\nSELECT {}\nFROM {} AS {alias}\n{}",
        dialect.view_options(),
        body.select.join(",\n       "),
        qualified(&ds.table.schema, &ds.table.table),
        access_subquery(dialect, ds, Some(flags)),
    );
    push_filters(&mut sql, &body.filters);
    Ok(CompiledView {
        view,
        sql,
        columns: body.columns,
        plan,
    })
}

fn push_filters(sql: &mut String, filters: &[String]) {
    if !filters.is_empty() {
        sql.push_str("\nWHERE ");
        sql.push_str(&filters.join("\n  AND "));
    }
}

fn body(
    dialect: Dialect,
    ds: &DataSource,
    plan: &AccessPlan,
    columns: &[Column],
    entitlements: &Entitlements<'_>,
) -> Result<Body, CompileError> {
    let alias = ident(&ds.table.table);
    let raw = |name: &str| format!("{alias}.{}", ident(name));
    let error = |item: &str, message: String| CompileError {
        item: item.to_string(),
        table: ds.table.key(),
        message,
    };
    let find = |item: &str, name: &str| {
        columns.iter().find(|c| c.name == name).ok_or_else(|| {
            let known: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            error(
                item,
                format!(
                    "column {name:?} does not exist in {} (columns: {})",
                    ds.table.key(),
                    known.join(", ")
                ),
            )
        })
    };
    // What a rule's condition is for this view: a runtime test, or already known.
    enum Test {
        Sql(String),
        Passes,
        Fails,
    }
    let test = |position: Option<usize>| match (position, entitlements) {
        (None, _) => Test::Fails,
        // One LIKE is one function call where substr(...) = '1' is two; each call costs at
        // every statement start (see masks.rs).
        (Some(position), Entitlements::Joined) => Test::Sql(format!(
            "immuta_access.immuta_flags LIKE '{}1%'",
            "_".repeat(position - 1)
        )),
        (Some(position), Entitlements::Fixed { flags, .. }) => {
            if flags.as_bytes()[position - 1] == b'1' {
                Test::Passes
            } else {
                Test::Fails
            }
        }
    };
    let (salt, attributes) = ("immuta_access.immuta_salt", "immuta_access.immuta_values");

    for mask in &ds.masks {
        find(&mask.origin, &mask.column)?;
    }
    let mut body = Body {
        select: Vec::new(),
        filters: Vec::new(),
        columns: Vec::new(),
    };
    for column in columns {
        let raw_column = raw(&column.name);
        let mask = ds.masks.iter().find(|m| m.column == column.name);
        body.columns.push((
            column.name.clone(),
            masks::view_type(dialect, mask.map(|m| &m.method), column),
        ));
        let Some(mask) = mask else {
            body.select.push(raw_column);
            continue;
        };
        let exempt = || masks::exempt_expression(dialect, &mask.method, &raw_column, column);
        let masked = || {
            let key = match &mask.method {
                MaskMethod::RandomizedResponse { key, .. } => {
                    Some(raw(&find(&mask.origin, key)?.name))
                }
                _ => None,
            };
            let cx = Context {
                dialect,
                raw: &raw_column,
                column,
                salt,
                key: key.as_deref(),
            };
            masks::masked_expression(&mask.method, &cx).map_err(|m| error(&mask.origin, m))
        };
        let expr = match test(plan.flag_of(None, &mask.unless)) {
            Test::Sql(flag) => format!("CASE WHEN {flag} THEN {} ELSE {} END", exempt(), masked()?),
            Test::Fails => masked()?,
            Test::Passes => {
                // Checked all the same: a class view must fail where the canonical one does.
                masked()?;
                exempt()
            }
        };
        body.select.push(if expr == raw_column {
            expr
        } else {
            format!("{expr} AS {}", ident(&column.name))
        });
    }

    for rule in &ds.row_rules {
        let filter = match &rule.filter {
            RowFilter::AttributeMatch { column, attribute } => {
                let column = find(&rule.origin, column)?;
                format!(
                    "strpos({attributes}, chr(31) || {} || chr(30) || CAST({} AS {}) || chr(31)) > 0",
                    dialect.literal(attribute),
                    raw(&column.name),
                    dialect.text_type()
                )
            }
            RowFilter::Predicate(predicate) => format!("({predicate})"),
        };
        match test(plan.flag_of(rule.for_groups.as_ref(), &rule.unless)) {
            Test::Sql(flag) => body.filters.push(format!("({flag} OR {filter})")),
            Test::Fails => body.filters.push(filter),
            Test::Passes => {}
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::masks::ColumnKind;
    use crate::policy::model::*;
    use std::collections::BTreeMap;

    fn columns() -> Vec<Column> {
        [
            ("id", "integer", ColumnKind::Number),
            ("email", "text", ColumnKind::Text),
            ("region", "text", ColumnKind::Text),
        ]
        .into_iter()
        .map(|(n, t, k)| Column {
            name: n.into(),
            sql_type: t.into(),
            kind: k,
        })
        .collect()
    }

    fn source(masks: Vec<Mask>, row_rules: Vec<RowRule>) -> DataSource {
        DataSource {
            origin: "data_sources[0]".into(),
            table: TableName {
                database: None,
                schema: "hr".into(),
                table: "employees".into(),
            },
            description: None,
            salt: None,
            subscription: Subscription::Anyone,
            masks,
            row_rules,
        }
    }

    fn hr() -> Exceptions {
        Exceptions {
            groups: ["hr".to_string()].into(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn compiles_masks_rules_and_the_access_join() {
        let ds = source(
            vec![Mask {
                origin: "data_sources[0].masks[0]".into(),
                column: "email".into(),
                method: MaskMethod::Hash {
                    cast_to_text: false,
                },
                unless: hr(),
            }],
            vec![
                RowRule {
                    origin: "data_sources[0].row_rules[0]".into(),
                    filter: RowFilter::AttributeMatch {
                        column: "region".into(),
                        attribute: "region".into(),
                    },
                    for_groups: None,
                    unless: hr(),
                },
                RowRule {
                    origin: "data_sources[0].row_rules[1]".into(),
                    filter: RowFilter::Predicate("id > 10".into()),
                    for_groups: None,
                    unless: Exceptions::default(),
                },
            ],
        );
        let class = compile_class(Dialect::Postgres, &ds, "0", &columns()).unwrap();
        assert_eq!(
            class.sql,
            "CREATE VIEW \"immuta_classes\".\"hr_employees__c0\" WITH (security_barrier) AS\n\
             SELECT \"employees\".\"id\",\n       \
             encode(sha256(convert_to(immuta_access.immuta_salt || \"employees\".\"email\", 'UTF8')), 'hex') AS \"email\",\n       \
             \"employees\".\"region\"\n\
             FROM \"hr\".\"employees\" AS \"employees\"\n\
             CROSS JOIN (SELECT immuta_row.attribute_values AS immuta_values, immuta_row.salt AS immuta_salt\n            \
             FROM \"immuta_system\".\"session_tokens\" AS immuta_token JOIN \"immuta_system\".\"profile_access\" AS immuta_row ON immuta_row.user_name = immuta_token.user_name\n            \
             WHERE immuta_token.token = current_setting('immuta.token', true) AND immuta_row.data_source = 'hr.employees' AND immuta_row.flags = '0') AS immuta_access\n\
             WHERE strpos(immuta_access.immuta_values, chr(31) || 'region' || chr(30) || CAST(\"employees\".\"region\" AS text) || chr(31)) > 0\n  \
             AND (id > 10)"
        );
        let view = compile(Dialect::Postgres, &ds, "immuta", &columns()).unwrap();
        assert_eq!(view.view, "\"immuta\".\"hr_employees\"");
        assert_eq!(
            view.sql,
            "CREATE VIEW \"immuta\".\"hr_employees\" WITH (security_barrier) AS\n\
             SELECT \"employees\".\"id\",\n       \
             CASE WHEN immuta_access.immuta_flags LIKE '1%' THEN \"employees\".\"email\" \
             ELSE encode(sha256(convert_to(immuta_access.immuta_salt || \"employees\".\"email\", 'UTF8')), 'hex') END AS \"email\",\n       \
             \"employees\".\"region\"\n\
             FROM \"hr\".\"employees\" AS \"employees\"\n\
             CROSS JOIN (SELECT immuta_row.flags AS immuta_flags, immuta_row.attribute_values AS immuta_values, immuta_row.salt AS immuta_salt\n            \
             FROM \"immuta_system\".\"session_tokens\" AS immuta_token JOIN \"immuta_system\".\"profile_access\" AS immuta_row ON immuta_row.user_name = immuta_token.user_name\n            \
             WHERE immuta_token.token = current_setting('immuta.token', true) AND immuta_row.data_source = 'hr.employees') AS immuta_access\n\
             WHERE (immuta_access.immuta_flags LIKE '1%' OR strpos(immuta_access.immuta_values, chr(31) || 'region' || chr(30) || CAST(\"employees\".\"region\" AS text) || chr(31)) > 0)\n  \
             AND (id > 10)"
        );
        assert_eq!(
            view.columns,
            [
                ("id".to_string(), "integer".to_string()),
                ("email".to_string(), "text".to_string()),
                ("region".to_string(), "text".to_string())
            ]
        );
    }

    #[test]
    fn errors_name_the_item_and_the_table() {
        let mask = |column: &str, method| Mask {
            origin: "data_sources[0].masks[3]".into(),
            column: column.into(),
            method,
            unless: Exceptions::default(),
        };
        let err = compile(
            Dialect::Postgres,
            &source(vec![mask("idd", MaskMethod::Null)], vec![]),
            "immuta",
            &columns(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "data_sources[0].masks[3] (hr.employees): column \"idd\" does not exist in hr.employees (columns: id, email, region)"
        );
        let err = compile(
            Dialect::Postgres,
            &source(
                vec![mask(
                    "id",
                    MaskMethod::Hash {
                        cast_to_text: false,
                    },
                )],
                vec![],
            ),
            "immuta",
            &columns(),
        )
        .unwrap_err();
        assert_eq!(err.item, "data_sources[0].masks[3]");
        assert_eq!(
            err.message,
            "hash needs a text column, but id is integer (hash yields text; set cast_to_text = true to hash its text form)"
        );
    }
}
