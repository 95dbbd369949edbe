//! Masking methods as SQL expressions over one column, with the type checks each needs.
//!
//! Every expression is plain SQL (no extensions, no UDFs) and keeps the column's type by
//! casting back to it, except `hash`, whose result is text. Where the engines spell a
//! function differently, the `dialect` room writes it.
//!
//! Randomized response (DESIGN.md decision 7): over a declared domain of k values, the true
//! value is shown with probability p = e^ε / (e^ε + k − 1), otherwise one of the k − 1 other
//! values, uniformly. This is ε-local differential privacy: for any two true values the
//! probability of any output differs by at most a factor p / ((1 − p) / (k − 1)) = e^ε.
//! It is computed in the equivalent form "keep with probability r = (e^ε − 1) / (e^ε + k − 1),
//! else show a value drawn uniformly from the whole domain" (the draw lands on the true value
//! with probability (1 − r) / k, so it is shown with probability r + (1 − r) / k = p). One
//! 32-bit draw u from SHA-256 of (salt, column, row key) decides both: u below ⌊r · 2³²⌋ keeps,
//! and the k equal buckets above it pick a domain value. The noise is the same on every read,
//! so repeating a query cannot average it away. Values outside the domain (and NULL) come out
//! as NULL.
//!
//! Every function call in a view costs PostgreSQL a lookup and a permission check each time a
//! statement starts, even when the call is never evaluated, so the expressions here use as few
//! calls as they can (one draw, `split_part` instead of CASE over the domain, `round(x, -n)`
//! for powers of ten).

use super::model::MaskMethod;
use crate::dialect::Dialect;

/// Largest randomized-response domain; the expression grows linearly with k.
pub const MAX_DOMAIN: usize = 256;

/// p = e^ε / (e^ε + k − 1).
pub fn keep_probability(epsilon: f64, k: usize) -> f64 {
    let e = epsilon.exp();
    e / (e + k as f64 - 1.0)
}

/// Where a 32-bit draw u lands: below `keep_below` the true value is kept, else domain value
/// number 1 + (u − keep_below) / `bucket` is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub keep_below: u64,
    pub bucket: u64,
}

const DRAWS: u64 = 1 << 32;

/// ⌊r · 2³²⌋ with r = (e^ε − 1) / (e^ε + k − 1), and k buckets of ⌈(2³² − ⌊r · 2³²⌋) / k⌉.
pub fn buckets(epsilon: f64, k: usize) -> Buckets {
    let e = epsilon.exp();
    let keep = (e - 1.0) / (e + k as f64 - 1.0);
    let keep_below = (keep * DRAWS as f64).floor() as u64;
    Buckets {
        keep_below,
        bucket: (DRAWS - keep_below).div_ceil(k as u64),
    }
}

/// What the compiler knows about a column, from information_schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `format_type` of the column (`numeric(12,2)`, `character varying(40)`, …).
    pub sql_type: String,
    pub kind: ColumnKind,
}

/// The families of types the masks care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Number,
    Date,
    Timestamp,
    Other,
}

impl ColumnKind {
    /// From information_schema.columns.data_type.
    pub fn from_data_type(data_type: &str) -> ColumnKind {
        match data_type {
            "text" | "character varying" | "character" => ColumnKind::Text,
            "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" => {
                ColumnKind::Number
            }
            "date" => ColumnKind::Date,
            "timestamp without time zone" | "timestamp with time zone" => ColumnKind::Timestamp,
            _ => ColumnKind::Other,
        }
    }
}

/// SQL the masks need from the view: the raw column and the salt.
pub struct Context<'a> {
    /// The engine the expression is written for.
    pub dialect: Dialect,
    /// `"employees"."salary"`.
    pub raw: &'a str,
    pub column: &'a Column,
    /// Expression of the data source's salt.
    pub salt: &'a str,
    /// Raw key column expression and its name, for randomized response.
    pub key: Option<&'a str>,
}

/// The masked expression, or why the method does not fit the column.
pub fn masked_expression(method: &MaskMethod, cx: &Context<'_>) -> Result<String, String> {
    let (raw, column, dialect) = (cx.raw, cx.column, cx.dialect);
    let typed = |expr: String| format!("CAST({expr} AS {})", column.sql_type);
    let need = |kinds: &[ColumnKind], what: &str| {
        if kinds.contains(&column.kind) {
            Ok(())
        } else {
            Err(format!(
                "{} needs a {what} column, but {} is {}",
                method_name(method),
                column.name,
                column.sql_type
            ))
        }
    };
    Ok(match method {
        MaskMethod::Null => typed("NULL".into()),
        MaskMethod::Constant(value) => typed(dialect.literal(value)),
        MaskMethod::Hash { cast_to_text } => {
            if !cast_to_text {
                need(&[ColumnKind::Text], "text").map_err(|e| {
                    format!("{e} (hash yields text; set cast_to_text = true to hash its text form)")
                })?;
            }
            dialect.sha256_hex(&format!(
                "{} || {}",
                cx.salt,
                dialect.as_text(raw, &column.sql_type)
            ))
        }
        MaskMethod::Regex {
            pattern,
            replacement,
        } => {
            need(&[ColumnKind::Text], "text")?;
            typed(dialect.replace_every_match(
                raw,
                &dialect.literal(pattern),
                &dialect.literal(replacement),
            ))
        }
        MaskMethod::Round { step } => {
            need(&[ColumnKind::Number], "numeric")?;
            let exact = dialect.exact_number(raw, scale_of(&column.sql_type).max(decimals(step)));
            typed(match power_of_ten(step) {
                Some(exponent) => format!("round({exact}, {})", -exponent),
                None => format!("round({exact} / {step}) * {step}"),
            })
        }
        MaskMethod::Truncate { unit } => {
            need(
                &[ColumnKind::Date, ColumnKind::Timestamp],
                "date or timestamp",
            )?;
            if column.kind == ColumnKind::Date && !unit.fits_date() {
                return Err(format!(
                    "truncate to {} needs a timestamp column, but {} is a date",
                    unit.as_str(),
                    column.name
                ));
            }
            typed(format!(
                "date_trunc({}, {raw})",
                dialect.literal(unit.as_str())
            ))
        }
        MaskMethod::RandomizedResponse {
            epsilon, domain, ..
        } => {
            need(&[ColumnKind::Text], "text")?;
            let key = cx.key.ok_or("randomized_response needs its key column")?;
            typed(randomized_response(cx, *epsilon, domain, key))
        }
    })
}

/// The raw value as the view shows it to exempt users: unchanged, except that a hashed
/// column is text for everyone so the view's column has one type.
pub fn exempt_expression(
    dialect: Dialect,
    method: &MaskMethod,
    raw: &str,
    column: &Column,
) -> String {
    match method {
        MaskMethod::Hash { .. } => dialect.as_text(raw, &column.sql_type),
        _ => raw.to_string(),
    }
}

/// The type the view's column has.
pub fn view_type(dialect: Dialect, method: Option<&MaskMethod>, column: &Column) -> String {
    match method {
        Some(MaskMethod::Hash { .. }) => dialect.text_type().into(),
        _ => column.sql_type.clone(),
    }
}

/// The scale of a `numeric(p,s)` column; 0 for other types.
fn scale_of(sql_type: &str) -> u32 {
    sql_type
        .strip_prefix("numeric(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|ps| ps.split(',').nth(1))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Digits after the point in a step written as a decimal (`0.05` has 2).
fn decimals(step: &str) -> u32 {
    step.split_once('.').map_or(0, |(_, f)| f.len() as u32)
}

/// n when `step` is 10ⁿ written plainly (`10000`, `1`, `0.01`), so one `round(x, -n)` does
/// the work of a division, a round and a multiplication.
fn power_of_ten(step: &str) -> Option<i32> {
    if let Some(zeros) = step.strip_prefix('1') {
        return zeros
            .bytes()
            .all(|b| b == b'0')
            .then_some(zeros.len() as i32);
    }
    let fraction = step.strip_prefix("0.")?;
    let zeros = fraction.strip_suffix('1')?;
    zeros
        .bytes()
        .all(|b| b == b'0')
        .then_some(-(zeros.len() as i32 + 1))
}

/// A 32-bit draw from the first 8 hex digits of SHA-256 of (salt, column, key).
fn draw(cx: &Context<'_>, key: &str) -> String {
    let dialect = cx.dialect;
    let input = format!(
        "{} || {} || CAST({key} AS {})",
        cx.salt,
        dialect.literal(&format!(":{}:", cx.column.name)),
        dialect.text_type(),
    );
    dialect.first_32_bits(&dialect.sha256_hex(&input))
}

/// The separator of the domain list; load refuses domain values containing it.
pub const DOMAIN_SEPARATOR: char = '\u{1f}';

/// `split_part(raw || <sep d1 sep d2 …>, sep, field)`: field 1 is the raw value itself (kept),
/// field 1 + i the i-th domain value. The membership test turns values outside the domain
/// into NULL. Constant parts are written so PostgreSQL folds them once, at plan time.
fn randomized_response(cx: &Context<'_>, epsilon: f64, domain: &[String], key: &str) -> String {
    let Buckets { keep_below, bucket } = buckets(epsilon, domain.len());
    let separated = |values: &[String]| -> String {
        values
            .iter()
            .map(|v| format!("chr(31) || {}", cx.dialect.literal(v)))
            .collect::<Vec<_>>()
            .join(" || ")
    };
    let raw = cx.raw;
    // GREATEST ignores NULL: without a salt the draw is NULL and field 1, the raw value,
    // would be shown. So no salt, no value.
    format!(
        "CASE WHEN {} IS NOT NULL AND strpos(({} || chr(31)), chr(31) || {raw} || chr(31)) > 0 \
         THEN split_part({raw} || ({}), chr(31), CAST(1 + GREATEST(0, ({} + {}) / {bucket}) AS integer)) END",
        cx.salt,
        separated(domain),
        separated(domain),
        draw(cx, key),
        bucket as i64 - keep_below as i64,
    )
}

fn method_name(method: &MaskMethod) -> &'static str {
    match method {
        MaskMethod::Null => "null",
        MaskMethod::Constant(_) => "constant",
        MaskMethod::Hash { .. } => "hash",
        MaskMethod::Regex { .. } => "regex",
        MaskMethod::Round { .. } => "round",
        MaskMethod::Truncate { .. } => "truncate",
        MaskMethod::RandomizedResponse { .. } => "randomized_response",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::TruncateUnit;

    fn column(name: &str, sql_type: &str, data_type: &str) -> Column {
        Column {
            name: name.into(),
            sql_type: sql_type.into(),
            kind: ColumnKind::from_data_type(data_type),
        }
    }

    fn cx<'a>(raw: &'a str, column: &'a Column) -> Context<'a> {
        Context {
            dialect: Dialect::Postgres,
            raw,
            column,
            salt: "s",
            key: Some("t.id"),
        }
    }

    #[test]
    fn keep_probability_matches_the_formula() {
        assert!((keep_probability(1.0, 4) - 0.475_367_3).abs() < 1e-6);
        assert!((keep_probability(0.0, 2) - 0.5).abs() < 1e-12);
        // r = (e − 1) / (e + 3) = 0.300488…; ⌊r · 2³²⌋ = 1_290_591_209.
        assert_eq!(
            buckets(1.0, 4),
            Buckets {
                keep_below: 1_290_591_209,
                bucket: 751_094_022
            }
        );
        // Shown: kept, or the draw lands on the true value's bucket.
        let b = buckets(1.0, 4);
        let shown = (b.keep_below + b.bucket) as f64 / DRAWS as f64;
        assert!((shown - keep_probability(1.0, 4)).abs() < 1e-8);
    }

    #[test]
    fn expressions_keep_the_column_type() {
        let salary = column("salary", "numeric(12,2)", "numeric");
        assert_eq!(
            masked_expression(
                &MaskMethod::Round {
                    step: "10000".into()
                },
                &cx("t.salary", &salary)
            )
            .unwrap(),
            "CAST(round(CAST(t.salary AS numeric), -4) AS numeric(12,2))"
        );
        assert_eq!(
            masked_expression(
                &MaskMethod::Round { step: "250".into() },
                &cx("t.salary", &salary)
            )
            .unwrap(),
            "CAST(round(CAST(t.salary AS numeric) / 250) * 250 AS numeric(12,2))"
        );
        assert_eq!(power_of_ten("1"), Some(0));
        assert_eq!(power_of_ten("0.01"), Some(-2));
        assert_eq!(power_of_ten("0.1"), Some(-1));
        assert_eq!(power_of_ten("100.5"), None);
        assert_eq!(power_of_ten("0.011"), None);
        let name = column("name", "text", "text");
        assert_eq!(
            masked_expression(
                &MaskMethod::Regex {
                    pattern: "^(.).*$".into(),
                    replacement: "\\1***".into()
                },
                &cx("t.name", &name)
            )
            .unwrap(),
            "CAST(regexp_replace(t.name, '^(.).*$', '\\1***', 'g') AS text)"
        );
        assert_eq!(
            masked_expression(
                &MaskMethod::Hash {
                    cast_to_text: false
                },
                &cx("t.name", &name)
            )
            .unwrap(),
            "encode(sha256(convert_to(s || t.name, 'UTF8')), 'hex')"
        );
        let hired = column("hired", "date", "date");
        assert_eq!(
            masked_expression(
                &MaskMethod::Truncate {
                    unit: TruncateUnit::Month
                },
                &cx("t.hired", &hired)
            )
            .unwrap(),
            "CAST(date_trunc('month', t.hired) AS date)"
        );
    }

    #[test]
    fn methods_refuse_columns_of_the_wrong_type() {
        let id = column("id", "integer", "integer");
        assert_eq!(
            masked_expression(&MaskMethod::Hash { cast_to_text: false }, &cx("t.id", &id)).unwrap_err(),
            "hash needs a text column, but id is integer (hash yields text; set cast_to_text = true to hash its text form)"
        );
        assert_eq!(
            masked_expression(&MaskMethod::Hash { cast_to_text: true }, &cx("t.id", &id)).unwrap(),
            "encode(sha256(convert_to(s || CAST(t.id AS text), 'UTF8')), 'hex')"
        );
        let hired = column("hired", "date", "date");
        assert_eq!(
            masked_expression(
                &MaskMethod::Truncate {
                    unit: TruncateUnit::Hour
                },
                &cx("t.hired", &hired)
            )
            .unwrap_err(),
            "truncate to hour needs a timestamp column, but hired is a date"
        );
        assert_eq!(
            masked_expression(
                &MaskMethod::Round { step: "5".into() },
                &cx("t.hired", &hired)
            )
            .unwrap_err(),
            "round needs a numeric column, but hired is date"
        );
    }

    #[test]
    fn randomized_response_expression() {
        let dept = column("dept", "text", "text");
        let sql = masked_expression(
            &MaskMethod::RandomizedResponse {
                epsilon: 1.0,
                domain: vec!["a".into(), "b".into()],
                key: "id".into(),
            },
            &cx("t.dept", &dept),
        )
        .unwrap();
        assert_eq!(
            sql,
            "CAST(CASE WHEN s IS NOT NULL AND strpos((chr(31) || 'a' || chr(31) || 'b' || chr(31)), chr(31) || t.dept || chr(31)) > 0 \
             THEN split_part(t.dept || (chr(31) || 'a' || chr(31) || 'b'), chr(31), \
             CAST(1 + GREATEST(0, (CAST(CAST('x' || substr(encode(sha256(convert_to(s || ':dept:' || CAST(t.id AS text), 'UTF8')), 'hex'), 1, 8) AS bit(32)) AS bigint) + -829683467) / 1155094610) AS integer)) END AS text)"
        );
    }
}
