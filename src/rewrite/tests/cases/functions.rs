//! Code that could run SQL text: SQL-text functions, DO blocks, function bodies, aggregates
//! over set_config, large objects; and the inert functions that may see table names.

use super::{case, Case, Expect::*};

pub const CASES: &[Case] = &[
    case(
        r#"SELECT query_to_xml('select 1', true, true, '')"#,
        Deny(r#"function "#),
    ),
    case(
        r#"SELECT * FROM query_to_xml('select * from hr.employees', true, true, '')"#,
        Deny(r#"function "#),
    ),
    case(
        r#"SELECT table_to_xml('hr.employees', true, true, '')"#,
        Deny(r#"function "#),
    ),
    case(
        r#"SELECT dblink('dbname=demo', 'select ssn from hr.employees')"#,
        Deny(r#"function "#),
    ),
    case(r#"SELECT ts_stat('select 1')"#, Deny(r#"function "#)),
    case(
        r#"SELECT my_exec('select * from hr.employees')"#,
        Deny(r#"function "#),
    ),
    case(r#"SELECT lower('hr.employees')"#, Same),
    case(
        r#"SELECT has_table_privilege('hr.employees', 'select')"#,
        Same,
    ),
    case(r#"SELECT 'hr.employees'::regclass"#, Same),
    case(
        r#"DO $$ BEGIN EXECUTE 'SELECT 1'; END $$"#,
        Deny(r#"dynamic SQL"#),
    ),
    case(
        r#"DO $$ BEGIN PERFORM set_config('x.y', 'z', false); END $$"#,
        Deny(r#"dynamic SQL"#),
    ),
    case(r#"DO $$ BEGIN RAISE NOTICE 'hi'; END $$"#, Same),
    case(
        r#"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'select 1'; RETURN 1; END $$"#,
        Deny(r#"dynamic SQL"#),
    ),
    case(
        r#"CREATE OR REPLACE FUNCTION f() RETURNS SETOF text LANGUAGE sql AS $$ SELECT ssn FROM hr.employees $$"#,
        Deny(r#"carries SQL text"#),
    ),
    case(
        r#"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'"#,
        Same,
    ),
    case(
        r#"DO $$ BEGIN SET standard_conforming_strings = off; END $$"#,
        Deny("code blocks"),
    ),
    case(
        r#"CREATE FUNCTION pg_temp.w() RETURNS text LANGUAGE sql AS $$ SELECT current_setting(chr(105) || 'mmuta.user') $$"#,
        Deny("code blocks"),
    ),
    case(
        r#"CREATE FUNCTION pg_temp.w() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$"#,
        Same,
    ),
    case(
        r#"CREATE AGGREGATE pg_temp.forge(text, boolean) (SFUNC = set_config, STYPE = text, INITCOND = E'\151mmuta.user')"#,
        Deny("set_config"),
    ),
    case(
        r#"CREATE AGGREGATE pg_temp.agg(int) (SFUNC = int4pl, STYPE = int)"#,
        Same,
    ),
    case(r#"SELECT lo_from_bytea(0, 'x')"#, Deny("large objects")),
    case(
        r#"SELECT loread(lo_open(1, 262144), 10)"#,
        Deny("large objects"),
    ),
    case(r#"SELECT 'hello_world', lower('x')"#, Same),
];
