//! Reads rewritten to views wherever a query can name a table: joins, subqueries, set
//! operations, CTEs (and the names they shadow), windows, parameters, EXPLAIN, PREPARE.

use super::{case, with_path, Case, Expect::*};

pub const CASES: &[Case] = &[
    case(
        r#"SELECT e.name, d.x FROM hr.employees e JOIN dept d ON d.id = e.dept"#,
        To(r#"SELECT e.name, d.x FROM immuta.hr_employees e JOIN dept d ON d.id = e.dept"#),
    ),
    case(
        r#"SELECT a.name, b.name FROM hr.employees a JOIN hr.employees b ON a.id = b.id + 1"#,
        To(
            r#"SELECT a.name, b.name FROM immuta.hr_employees a JOIN immuta.hr_employees b ON a.id = b.id + 1"#,
        ),
    ),
    case(
        r#"SELECT * FROM hr.employees, orders"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees, immuta.public_orders AS orders"#),
    ),
    case(
        r#"SELECT * FROM hr.employees e LEFT JOIN LATERAL (SELECT * FROM orders o WHERE o.emp = e.id) x ON true"#,
        To(
            r#"SELECT * FROM immuta.hr_employees e LEFT JOIN LATERAL (SELECT * FROM immuta.public_orders o WHERE o.emp = e.id) x ON true"#,
        ),
    ),
    case(
        r#"SELECT * FROM (SELECT * FROM hr.employees) sub"#,
        To(r#"SELECT * FROM (SELECT * FROM immuta.hr_employees AS employees) sub"#),
    ),
    case(
        r#"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM hr.employees e WHERE e.id = t.id)"#,
        To(
            r#"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM immuta.hr_employees e WHERE e.id = t.id)"#,
        ),
    ),
    case(
        r#"SELECT * FROM t WHERE id IN (SELECT id FROM hr.employees)"#,
        To(r#"SELECT * FROM t WHERE id IN (SELECT id FROM immuta.hr_employees AS employees)"#),
    ),
    case(
        r#"SELECT (SELECT max(salary) FROM hr.employees) AS top"#,
        To(r#"SELECT (SELECT max(salary) FROM immuta.hr_employees AS employees) AS top"#),
    ),
    case(
        r#"SELECT name FROM hr.employees UNION SELECT name FROM t"#,
        To(r#"SELECT name FROM immuta.hr_employees AS employees UNION SELECT name FROM t"#),
    ),
    case(
        r#"SELECT name FROM t EXCEPT SELECT name FROM hr.employees INTERSECT SELECT name FROM orders"#,
        To(
            r#"SELECT name FROM t EXCEPT SELECT name FROM immuta.hr_employees AS employees INTERSECT SELECT name FROM immuta.public_orders AS orders"#,
        ),
    ),
    case(
        r#"SELECT dept, avg(salary) FROM hr.employees GROUP BY dept HAVING count(*) > 1 ORDER BY 2 DESC"#,
        To(
            r#"SELECT dept, avg(salary) FROM immuta.hr_employees AS employees GROUP BY dept HAVING count(*) > 1 ORDER BY 2 DESC"#,
        ),
    ),
    case(
        r#"SELECT name, rank() OVER (PARTITION BY dept ORDER BY salary DESC) FROM hr.employees"#,
        To(
            r#"SELECT name, rank() OVER (PARTITION BY dept ORDER BY salary DESC) FROM immuta.hr_employees AS employees"#,
        ),
    ),
    case(
        r#"SELECT * FROM hr.employees ORDER BY ssn LIMIT 10 OFFSET 5"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees ORDER BY ssn LIMIT 10 OFFSET 5"#),
    ),
    case(
        r#"SELECT count(*) FILTER (WHERE region = 'EU') FROM hr.employees"#,
        To(r#"SELECT count(*) FILTER (WHERE region = 'EU') FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"WITH e AS (SELECT * FROM hr.employees) SELECT * FROM e JOIN e AS e2 ON true"#,
        To(
            r#"WITH e AS (SELECT * FROM immuta.hr_employees AS employees) SELECT * FROM e JOIN e AS e2 ON true"#,
        ),
    ),
    with_path(
        r#"hr"#,
        r#"WITH e AS (SELECT * FROM employees) SELECT * FROM employees"#,
        To(
            r#"WITH e AS (SELECT * FROM immuta.hr_employees AS employees) SELECT * FROM immuta.hr_employees AS employees"#,
        ),
    ),
    with_path(
        r#"hr"#,
        r#"WITH a AS (SELECT 1), b AS (SELECT * FROM employees) SELECT * FROM b"#,
        To(
            r#"WITH a AS (SELECT 1), b AS (SELECT * FROM immuta.hr_employees AS employees) SELECT * FROM b"#,
        ),
    ),
    with_path(
        r#"hr"#,
        r#"WITH employees AS (SELECT 1 AS id) SELECT * FROM hr.employees"#,
        To(r#"WITH employees AS (SELECT 1 AS id) SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    with_path(
        r#"hr"#,
        r#"WITH employees AS (SELECT 1 AS id) SELECT * FROM (SELECT * FROM employees) s"#,
        Same,
    ),
    with_path(
        r#"hr"#,
        r#"SELECT * FROM (WITH employees AS (SELECT 1) SELECT * FROM employees) a, employees"#,
        To(
            r#"SELECT * FROM (WITH employees AS (SELECT 1) SELECT * FROM employees) a, immuta.hr_employees AS employees"#,
        ),
    ),
    with_path(
        r#"hr"#,
        r#"WITH RECURSIVE r AS (SELECT id FROM employees UNION ALL SELECT id + 1 FROM r WHERE id < 3) SELECT * FROM r"#,
        To(
            r#"WITH RECURSIVE r AS (SELECT id FROM immuta.hr_employees AS employees UNION ALL SELECT id + 1 FROM r WHERE id < 3) SELECT * FROM r"#,
        ),
    ),
    with_path(
        r#"hr"#,
        r#"WITH "Employees" AS (SELECT 1) SELECT * FROM employees"#,
        To(r#"WITH "Employees" AS (SELECT 1) SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    with_path(
        r#"hr"#,
        r#"WITH w AS (SELECT 1) SELECT * FROM w WHERE EXISTS (SELECT 1 FROM employees)"#,
        To(
            r#"WITH w AS (SELECT 1) SELECT * FROM w WHERE EXISTS (SELECT 1 FROM immuta.hr_employees AS employees)"#,
        ),
    ),
    case(
        r#"EXPLAIN SELECT * FROM hr.employees"#,
        To(r#"EXPLAIN SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"EXPLAIN SELECT * FROM hr.employees WHERE id = 1"#,
        To(r#"EXPLAIN SELECT * FROM immuta.hr_employees AS employees WHERE id = 1"#),
    ),
    case(
        r#"PREPARE p(int) AS SELECT * FROM hr.employees WHERE id = $1"#,
        To(r#"PREPARE p (INT) AS SELECT * FROM immuta.hr_employees AS employees WHERE id = $1"#),
    ),
    case(r#"EXECUTE p(1)"#, Same),
    case(
        r#"DECLARE c CURSOR FOR SELECT * FROM hr.employees"#,
        To(r#"DECLARE c CURSOR FOR SELECT * FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"SELECT * FROM hr.employees WHERE id = $1 AND name = $2"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees WHERE id = $1 AND name = $2"#),
    ),
    case(
        r#"SELECT $1::text FROM hr.employees"#,
        To(r#"SELECT $1::TEXT FROM immuta.hr_employees AS employees"#),
    ),
    case(
        r#"SELECT * FROM hr.employees TABLESAMPLE SYSTEM (10)"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees TABLESAMPLE SYSTEM (10)"#),
    ),
    case(
        r#"SELECT * FROM ONLY hr.employees"#,
        Deny(r#"cannot parse"#),
    ),
    case(
        r#"SELECT * FROM hr.employees FOR UPDATE"#,
        To(r#"SELECT * FROM immuta.hr_employees AS employees FOR UPDATE"#),
    ),
];
