//! Name resolution as PostgreSQL does it: case folding, quoting, search_path, three-part
//! names, aliases kept so qualified columns still resolve, names that only look alike.

use super::{case, with_path, Case, Expect::*};

pub const CASES: &[Case] = &[
    case(r#"SELECT 1"#, Same),
    case(r#"SELECT * FROM pg_class WHERE relname = 'x'"#, Same),
    case(r#"SELECT * FROM employees"#, Same),
    with_path(
        r#"hr"#,
        r#"SELECT * FROM employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    with_path(
        r#"hr"#,
        r#"SELECT * FROM Employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS Employees"#),
    ),
    with_path(r#"hr"#, r#"SELECT * FROM "Employees""#, Same),
    with_path(
        r#"hr"#,
        r#"SELECT * FROM "employees""#,
        To(r#"SELECT * FROM immuta.hr_employees AS "employees""#),
    ),
    with_path(
        r#"public, hr"#,
        r#"SELECT * FROM employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    with_path(r#""Hr""#, r#"SELECT * FROM employees"#, Same),
    case(
        r#"SELECT * FROM hr."employees""#,
        To(r#"SELECT * FROM immuta.hr_employees AS "employees""#),
    ),
    case(
        r#"SELECT * FROM "hr"."employees" AS x"#,
        To(r#"SELECT * FROM immuta.hr_employees AS x"#),
    ),
    case(
        r#"SELECT * FROM Hr.Employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS Employees"#),
    ),
    case(r#"SELECT * FROM "DEMO".hr.employees"#, Same),
    case(
        r#"SELECT * FROM DEMO.hr.employees"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"SELECT * FROM orders"#,
        To(r#"SELECT * FROM immuta.public_orders AS orders"#),
    ),
    case(
        r#"SELECT * FROM public.orders"#,
        To(r#"SELECT * FROM immuta.public_orders AS orders"#),
    ),
    with_path(r#""""#, r#"SELECT * FROM orders"#, Same),
    case(r#"SELECT * FROM "Sales".deals"#, Same),
    case(
        r#"SELECT * FROM "Sales"."Deals" d"#,
        To(r#"SELECT * FROM immuta."Sales_Deals" d"#),
    ),
    with_path(r#"Sales"#, r#"SELECT * FROM "Deals""#, Same),
    with_path(
        r#""Sales""#,
        r#"SELECT * FROM "Deals""#,
        To(r#"SELECT * FROM immuta."Sales_Deals" AS "Deals""#),
    ),
    case(
        r#"SELECT * FROM ops.tickets"#,
        To(r#"SELECT * FROM immuta.ops_tickets AS tickets"#),
    ),
    case(r#"SELECT * FROM hr.employees_archive"#, Same),
    case(
        r#"SELECT c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(employees)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid)"#,
        Same,
    ),
    case(
        r#"SELECT hr.employees.name FROM hr.employees WHERE hr.employees.id = 1 ORDER BY hr.employees.salary"#,
        To(
            r#"SELECT employees.name FROM immuta.hr_employees AS employees WHERE employees.id = 1 ORDER BY employees.salary"#,
        ),
    ),
    case(
        r#"SELECT * FROM hr.employees AS e (a, b)"#,
        To(r#"SELECT * FROM immuta.hr_employees AS e (a, b)"#),
    ),
    case(r#"VALUES (1), (2)"#, Same),
    case(r#"SELECT * FROM generate_series(1, 3) AS employees"#, Same),
    case(r#"SELECT employees FROM t"#, Same),
];
