//! What belongs to redveil: its schemas, its prepared-statement names, and EXPLAIN ANALYZE,
//! whose row counts would include the rows a policy hides.

use super::{case, Case, Expect::*};

pub const CASES: &[Case] = &[
    case(
        r#"EXPLAIN ANALYZE SELECT * FROM hr.employees WHERE id = 1"#,
        Deny(r#"its row counts include the rows policies hide"#),
    ),
    case(r#"SELECT * FROM immuta.hr_employees"#, Same),
    case(
        r#"SELECT * FROM immuta_system.profile_users"#,
        Deny(r#"belongs to redveil"#),
    ),
    case(
        r#"SELECT * FROM IMMUTA_SYSTEM.user_profile"#,
        Deny(r#"belongs to redveil"#),
    ),
    case(
        r#"SELECT * FROM "immuta_system"."profile_attributes""#,
        Deny(r#"belongs to redveil"#),
    ),
    case(
        r#"CALL immuta_procedures.something('x')"#,
        Deny(r#"belongs to redveil"#),
    ),
    case(
        r#"SELECT immuta_functions.mask('x')"#,
        Deny(r#"belongs to redveil"#),
    ),
    case(
        r#"DROP VIEW immuta.hr_employees"#,
        Deny(r#"names the redveil schema"#),
    ),
    case(r#"DEALLOCATE redveil_0123"#, Deny("redveil_*")),
    case(r#"DEALLOCATE PREPARE "redveil_0123""#, Deny("redveil_*")),
    case(r#"EXECUTE redveil_0123"#, Deny("redveil_*")),
    case(r#"PREPARE redveil_0123 AS SELECT 1"#, Deny("redveil_*")),
    case(r#"DEALLOCATE p"#, Same),
    case(
        r#"EXPLAIN (ANALYZE, VERBOSE) SELECT * FROM hr.employees"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    case(
        r#"EXPLAIN (ANALYZE) SELECT * FROM immuta.hr_employees"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    // What it reads may be hidden from the proxy: a prepared statement, a temporary view.
    case(r#"EXPLAIN ANALYZE SELECT 1"#, Deny("EXPLAIN ANALYZE")),
    case(r#"EXPLAIN ANALYZE EXECUTE q"#, Deny("EXPLAIN ANALYZE")),
    case(
        r#"explain (analyse, buffers) execute q(1)"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    case(
        r#"EXPLAIN (VERBOSE, ANALYZE false) EXECUTE q"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    case(
        r#"EXPLAIN ANALYZE SELECT * FROM pg_temp.ev WHERE region = 'US'"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    case(
        r#"DO $$ DECLARE r record; BEGIN FOR r IN EXPLAIN ANALYZE SELECT 1 LOOP RAISE NOTICE '%', r; END LOOP; END $$"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    case(
        r#"CREATE FUNCTION pg_temp.f() RETURNS SETOF text LANGUAGE sql AS 'EXPLAIN ANALYZE SELECT 1'"#,
        Deny("EXPLAIN ANALYZE"),
    ),
    case(r#"EXPLAIN EXECUTE q"#, Same),
    case(r#"EXPLAIN SELECT * FROM t WHERE note = 'analyze'"#, Same),
];
