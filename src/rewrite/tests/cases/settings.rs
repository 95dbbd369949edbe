//! The pinned identity and the settings around it: immuta.*, role switches, search_path,
//! standard_conforming_strings, in every spelling and through set_config/current_setting.

use super::{case, Case, Expect::*};

pub const CASES: &[Case] = &[
    case(
        r#"SELECT set_config('immuta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    case(
        r#"SELECT set_config('IMMUTA.USER', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    case(
        r#"SELECT pg_catalog.set_config('immuta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    case(
        r#"SELECT set_config('imm' || 'uta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    case(
        r#"SELECT set_config(E'immuta.user', 'admin', false)"#,
        Deny(r#"set_config"#),
    ),
    case(r#"SELECT set_config('application_name', 'x', false)"#, Same),
    case(r#"SELECT set_config('search_path', 'hr', false)"#, Same),
    case(
        r#"SELECT set_config('search_path', 'hr', false), current_setting('search_path')"#,
        Deny(r#"set_config"#),
    ),
    case(
        r#"SELECT set_config('role', 'postgres', false)"#,
        Deny(r#"set_config"#),
    ),
    case(
        r#"SELECT current_setting('immuta.user')"#,
        Deny(r#"reserved for redveil"#),
    ),
    case(r#"SELECT current_setting('application_name')"#, Same),
    // Sync's filtered views stand in for the catalog's (policy::schema::SESSION_VIEWS).
    case(
        r#"SELECT * FROM pg_settings WHERE name LIKE 'immuta%'"#,
        To(r#"SELECT * FROM immuta_system.own_settings AS pg_settings WHERE name LIKE 'immuta%'"#),
    ),
    case(
        r#"SELECT name, setting FROM pg_catalog.pg_settings s"#,
        To(r#"SELECT name, setting FROM immuta_system.own_settings s"#),
    ),
    case(
        r#"SELECT pid, query FROM pg_stat_activity WHERE state = 'active'"#,
        To(
            r#"SELECT pid, query FROM immuta_system.own_activity AS pg_stat_activity WHERE state = 'active'"#,
        ),
    ),
    case(
        r#"UPDATE pg_settings SET setting = 'x' WHERE name = 'immuta.token'"#,
        Deny(r#"pg_settings"#),
    ),
    case(
        r#"SELECT * FROM pg_stat_get_activity(NULL)"#,
        Deny(r#"pg_stat_get_activity"#),
    ),
    case(
        r#"SELECT * FROM pg_show_all_settings()"#,
        Deny(r#"function "#),
    ),
    case(r#"SET immuta.user = 'admin'"#, Deny(r#"immuta settings"#)),
    case(r#"SET IMMUTA.USER TO admin"#, Deny(r#"immuta settings"#)),
    case(r#"SET "immuta.user" = 'admin'"#, Deny(r#"immuta settings"#)),
    case(
        r#"SET LOCAL immuta.user = 'admin'"#,
        Deny(r#"immuta settings"#),
    ),
    case(
        r#"SET SESSION immuta /* x */ . user = 'admin'"#,
        Deny(r#"immuta settings"#),
    ),
    case(r#"SHOW immuta.user"#, Deny(r#"immuta settings"#)),
    case(r#"RESET immuta.user"#, Deny(r#"immuta settings"#)),
    case(r#"SET ROLE postgres"#, Deny(r#"SET ROLE"#)),
    case(r#"SET LOCAL ROLE postgres"#, Deny(r#"SET ROLE"#)),
    case(r#"SET SESSION AUTHORIZATION postgres"#, Deny(r#"SET ROLE"#)),
    case(
        r#"SET SESSION SESSION AUTHORIZATION postgres"#,
        Deny(r#"SET ROLE"#),
    ),
    case(r#"RESET ROLE"#, Deny(r#"RESET ROLE"#)),
    case(r#"RESET SESSION AUTHORIZATION"#, Deny(r#"RESET ROLE"#)),
    case(r#"RESET ALL"#, Same),
    case(r#"DISCARD ALL"#, Same),
    case(r#"SET search_path = hr"#, Same),
    case(r#"SET application_name = 'x'"#, Same),
    case(
        r#"SET session_authorization = 'postgres'"#,
        Deny("session_authorization"),
    ),
    case(
        r#"RESET session_authorization"#,
        Deny("session_authorization"),
    ),
    case(
        r#"SET standard_conforming_strings = off"#,
        Deny("standard_conforming_strings"),
    ),
    case(
        r#"SET SESSION standard_conforming_strings TO 'false'"#,
        Deny("standard_conforming_strings"),
    ),
    case(r#"SET standard_conforming_strings = on"#, Same),
    case(r#"SET standard_conforming_strings TO 'on'"#, Same),
    case(
        r#"SELECT set_config('standard_conforming_strings', 'off', false)"#,
        Deny("standard_conforming_strings"),
    ),
    case(
        r#"SELECT set_config('statement_timeout', '5s', false)"#,
        Same,
    ),
    // pg_dump's first statement: tracked like SET, its raw value read as the server reads it.
    case(
        r#"SELECT pg_catalog.set_config('search_path', '', false)"#,
        Same,
    ),
    case(
        r#"SELECT pg_catalog.set_config('search_path', 'hr', false); SELECT * FROM employees"#,
        To(
            "SELECT pg_catalog.set_config('search_path', 'hr', false);\nSELECT * FROM immuta.hr_employees AS employees",
        ),
    ),
    case(
        r#"SELECT set_config('search_path', 'hr', true)"#,
        Deny("set_config('search_path'"),
    ),
    case(
        r#"SELECT set_config('immuta.token', 'forged', false)"#,
        Deny("immuta"),
    ),
];
