//! The SQL spellings of the policy side that differ between the engines: literals, the text
//! type, and the functions the masks are built from. Each Redshift spelling names the AWS page
//! it rests on (https://docs.aws.amazon.com/redshift/latest/dg/<page>).

use super::Dialect;

/// A string literal every PostgreSQL reads as `value`, whatever its
/// `standard_conforming_strings`: with a backslash it takes the `E'...'` form.
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

impl Dialect {
    /// A string literal the cluster reads back as `value`. PostgreSQL: quotes doubled (sync
    /// runs with standard-conforming strings). Redshift: backslashes doubled too, since its
    /// literals always take backslash escapes (pattern-matching-conditions-posix.html).
    pub fn literal(self, value: &str) -> String {
        let quoted = value.replace('\'', "''");
        match self {
            Dialect::Postgres => format!("'{quoted}'"),
            Dialect::Redshift => format!("'{}'", quoted.replace('\\', "\\\\")),
        }
    }

    /// The type a value is cast to as text. Redshift turns `TEXT` into `VARCHAR(256)`, which
    /// would cut values (r_Character_types.html); 65535 is its longest VARCHAR.
    pub fn text_type(self) -> &'static str {
        match self {
            Dialect::Postgres => "text",
            Dialect::Redshift => "VARCHAR(65535)",
        }
    }

    /// `expr` cast to the text type, unless it is a column already of that type.
    pub fn as_text(self, expr: &str, sql_type: &str) -> String {
        if sql_type == self.text_type() {
            expr.to_string()
        } else {
            format!("CAST({expr} AS {})", self.text_type())
        }
    }

    /// Lower-case hex of SHA-256 over a text expression's UTF-8 bytes. Redshift has no
    /// `encode`/`convert_to` (c_unsupported-postgresql-functions.html); `SHA2(x, 256)` returns
    /// the hex text itself (SHA2.html), cast to the text type so that a view's column has the
    /// same type whether the mask applies or not (a client sees one row description).
    pub fn sha256_hex(self, expr: &str) -> String {
        match self {
            Dialect::Postgres => format!("encode(sha256(convert_to({expr}, 'UTF8')), 'hex')"),
            Dialect::Redshift => format!("CAST(sha2({expr}, 256) AS {})", self.text_type()),
        }
    }

    /// The first 8 hex digits of `hex` as a non-negative integer below 2³². Redshift has no
    /// BIT type (c_unsupported-postgresql-datatypes.html) and its SUBSTR is leader-only
    /// (c_SQL_functions_leader_node_only.html): `STRTOL(SUBSTRING(...), 16)` (r_STRTOL.html).
    pub fn first_32_bits(self, hex: &str) -> String {
        match self {
            Dialect::Postgres => {
                format!("CAST(CAST('x' || substr({hex}, 1, 8) AS bit(32)) AS bigint)")
            }
            Dialect::Redshift => format!("strtol(substring({hex}, 1, 8), 16)"),
        }
    }

    /// Every match of `pattern` in `raw` replaced (both arguments already literals). Redshift's
    /// REGEXP_REPLACE replaces every occurrence and takes a position, not flags, as its fourth
    /// argument (REGEXP_REPLACE.html).
    pub fn replace_every_match(self, raw: &str, pattern: &str, replacement: &str) -> String {
        match self {
            Dialect::Postgres => format!("regexp_replace({raw}, {pattern}, {replacement}, 'g')"),
            Dialect::Redshift => format!("regexp_replace({raw}, {pattern}, {replacement})"),
        }
    }

    /// `raw` as an exact number with at least `scale` decimals, for rounding. A bare Redshift
    /// `NUMERIC` has scale 0 and would drop the decimals before the rounding
    /// (r_Numeric_types201.html).
    pub fn exact_number(self, raw: &str, scale: u32) -> String {
        match self {
            Dialect::Postgres => format!("CAST({raw} AS numeric)"),
            Dialect::Redshift => format!("CAST({raw} AS DECIMAL(38, {}))", scale.min(37)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_literal_reads_alike_in_either_reading() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }

    #[test]
    fn literals_read_back_as_written() {
        assert_eq!(Dialect::Postgres.literal(r"it's \1"), r"'it''s \1'");
        assert_eq!(Dialect::Redshift.literal(r"it's \1"), r"'it''s \\1'");
    }

    #[test]
    fn redshift_spellings_avoid_what_it_lacks() {
        let r = Dialect::Redshift;
        assert_eq!(r.sha256_hex("x"), "CAST(sha2(x, 256) AS VARCHAR(65535))");
        assert_eq!(
            r.first_32_bits(&r.sha256_hex("x")),
            "strtol(substring(CAST(sha2(x, 256) AS VARCHAR(65535)), 1, 8), 16)"
        );
        assert_eq!(
            r.replace_every_match("t.name", "'a'", "'b'"),
            "regexp_replace(t.name, 'a', 'b')"
        );
        assert_eq!(
            r.exact_number("t.salary", 2),
            "CAST(t.salary AS DECIMAL(38, 2))"
        );
        assert_eq!(r.as_text("t.id", "integer"), "CAST(t.id AS VARCHAR(65535))");
        assert_eq!(Dialect::Postgres.as_text("t.name", "text"), "t.name");
    }
}
