//! Text the proxy must judge without (or before) a parse: unparseable statements, Unicode
//! escapes, comments, quoting, and multi-statement strings.

use super::{case, Case, Expect::*};

pub const CASES: &[Case] = &[
    case(r#"SELECT * FROM U&"hr".U&"employees""#, Deny(r#"Unicode"#)),
    case(r#"SELECT * FROM U&"\0065mployees""#, Deny(r#"Unicode"#)),
    case(
        r#"SELECT this is not sql FROM hr.employees"#,
        Deny(r#"cannot parse"#),
    ),
    // Names count as words, quoted identifiers and whole words in string literals; a
    // comment, or a longer word that contains one, names nothing.
    case(r#"SELECT this is not sql -- hr.employees"#, Same),
    case(r#"SELECT this is not sql /* immuta */"#, Same),
    case(
        r#"CREATE FUNCTION f() RETURNS int IMMUTABLE LANGUAGE foo AS 'immutable'"#,
        Same,
    ),
    case(r#"SELECT this is not sql FROM employees_archive"#, Same),
    case(
        r#"SELECT this is not sql FROM "EMPLOYEES""#,
        Deny(r#"cannot parse"#),
    ),
    case(
        r#"SELECT this is not sql 'x; SELECT * FROM hr.employees'"#,
        Deny(r#"cannot parse"#),
    ),
    case(
        r#"SELECT this is not sql 'set immuta.user'"#,
        Deny(r#"cannot parse"#),
    ),
    case(
        r#"SELECT this is not sql Immuta_System.t"#,
        Deny(r#"cannot parse"#),
    ),
    case(r#"SELECT this is not sql"#, Same),
    case(r#"SELECT 'employees' FROM t"#, Same),
    case(r#"SELECT * FROM t /* employees */"#, Same),
    case(
        r#"SELECT 1; SELECT * FROM hr.employees"#,
        To(r#"SELECT 1;
SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"SELECT 1; UPDATE hr.employees SET salary = 1"#,
        Deny(r#"writing to"#),
    ),
    case(r#"SELECT 1; SET ROLE postgres"#, Deny(r#"SET ROLE"#)),
    case(
        r#"BEGIN; SELECT * FROM hr.employees; COMMIT"#,
        To(r#"BEGIN;
SELECT * FROM immuta.hr_employees AS employees;
COMMIT"#),
    ),
    case(r#"SELECT $$ ; SELECT * FROM hr.employees $$"#, Same),
    case(
        r#"SELECT ';' FROM hr.employees WHERE name = 'a;b'"#,
        To(r#"SELECT ';' FROM immuta.hr_employees AS employees WHERE name = 'a;b'"#),
    ),
];
