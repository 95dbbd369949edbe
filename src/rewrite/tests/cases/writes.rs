//! Writes, DDL, COPY and statements that materialise a query: rewritten when they only read a
//! registered table, refused when they would write it or touch it otherwise.

use super::{case, Case, Expect::*};

pub const CASES: &[Case] = &[
    case(
        r#"INSERT INTO t SELECT * FROM hr.employees"#,
        To(r#"INSERT INTO t SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"INSERT INTO t (a) SELECT name FROM hr.employees WHERE id = $1"#,
        To(r#"INSERT INTO t (a) SELECT name FROM immuta.hr_employees AS employees WHERE id = $1"#),
    ),
    case(
        r#"CREATE TABLE t AS SELECT * FROM hr.employees"#,
        To(r#"CREATE TABLE t AS SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"CREATE TEMP TABLE t AS SELECT ssn FROM hr.employees"#,
        To(r#"CREATE TEMPORARY TABLE t AS SELECT ssn FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"SELECT * INTO t FROM hr.employees"#,
        To(r#"SELECT * INTO t FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"CREATE VIEW v AS SELECT * FROM hr.employees"#,
        To(r#"CREATE VIEW v AS SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"COPY (SELECT name FROM hr.employees WHERE id < 10) TO STDOUT WITH (FORMAT csv)"#,
        To(
            r#"COPY (SELECT name FROM immuta.hr_employees AS employees WHERE id < 10) TO STDOUT (FORMAT csv)"#,
        ),
    ),
    case(r#"COPY hr.employees (name) TO STDOUT"#, Deny(r#"COPY of"#)),
    case(r#"COPY hr.employees FROM STDIN"#, Deny(r#"COPY of"#)),
    case(r#"COPY t FROM STDIN"#, Same),
    case(
        r#"UPDATE hr.employees SET salary = 0"#,
        Deny(r#"writing to"#),
    ),
    case(
        r#"DELETE FROM hr.employees WHERE id = 1"#,
        Deny(r#"writing to"#),
    ),
    case(
        r#"DELETE FROM t USING hr.employees e WHERE t.id = e.id"#,
        To(r#"DELETE FROM t USING immuta.hr_employees e WHERE t.id = e.id"#),
    ),
    case(
        r#"UPDATE t SET name = e.name FROM hr.employees e WHERE t.id = e.id"#,
        To(r#"UPDATE t SET name = e.name FROM immuta.hr_employees e WHERE t.id = e.id"#),
    ),
    case(
        r#"INSERT INTO hr.employees SELECT * FROM t"#,
        Deny(r#"writing to"#),
    ),
    case(r#"INSERT INTO ops.tickets VALUES (1)"#, Same),
    case(r#"UPDATE ops.tickets SET x = 1"#, Same),
    case(
        r#"MERGE INTO hr.employees e USING t ON t.id = e.id WHEN MATCHED THEN DELETE"#,
        Deny(r#"writing to"#),
    ),
    case(
        r#"MERGE INTO t USING hr.employees e ON t.id = e.id WHEN MATCHED THEN UPDATE SET name = e.name"#,
        To(
            r#"MERGE INTO t USING immuta.hr_employees e ON t.id = e.id WHEN MATCHED THEN UPDATE SET name = e.name"#,
        ),
    ),
    case(
        r#"TRUNCATE hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    case(r#"TRUNCATE t"#, Same),
    case(
        r#"ALTER TABLE hr.employees ADD COLUMN x int"#,
        Deny(r#"names the registered table"#),
    ),
    case(
        r#"DROP TABLE hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    case(r#"DROP TABLE employees_old"#, Same),
    case(
        r#"GRANT SELECT ON hr.employees TO public"#,
        Deny(r#"names the registered table"#),
    ),
    case(
        r#"CREATE INDEX ON hr.employees (name)"#,
        Deny(r#"names the registered table"#),
    ),
    case(
        r#"LOCK TABLE hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    case(
        r#"COMMENT ON TABLE hr.employees IS 'x'"#,
        Deny(r#"names the registered table"#),
    ),
    case(
        r#"VACUUM hr.employees"#,
        Deny(r#"names the registered table"#),
    ),
    case(r#"CREATE TABLE t (id int)"#, Same),
    case(
        r#"WITH x AS (DELETE FROM hr.employees RETURNING *) SELECT * FROM x"#,
        Deny(r#"writing to"#),
    ),
    case(
        r#"WITH x AS (SELECT * FROM hr.employees) INSERT INTO t SELECT * FROM x"#,
        To(
            r#"WITH x AS (SELECT * FROM immuta.hr_employees AS employees) INSERT INTO t SELECT * FROM x"#,
        ),
    ),
    case(
        r#"ALTER ROLE redveil_query SET search_path = hr"#,
        Deny("ALTER ROLE"),
    ),
    case(
        r#"ALTER USER CURRENT_USER SET work_mem = 64"#,
        Deny("ALTER ROLE"),
    ),
    case(r#"alter database demo set x.y = 1"#, Deny("ALTER ROLE")),
];
