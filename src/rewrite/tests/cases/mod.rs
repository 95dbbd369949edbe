//! The table of rewrite cases, one file per concern: (search_path as the server would hold
//! it, statement, outcome).

mod functions;
mod names;
mod parsing;
mod queries;
mod reserved;
mod settings;
mod writes;

pub enum Expect {
    /// Forwarded as the client's bytes.
    Same,
    /// Sent as this text.
    To(&'static str),
    /// Refused with 42501; the message contains this.
    Deny(&'static str),
}

pub struct Case {
    pub search_path: &'static str,
    pub sql: &'static str,
    pub expect: Expect,
}

/// PostgreSQL's default search_path, which most cases run with.
const DEFAULT_PATH: &str = r#""$user", public"#;

const fn case(sql: &'static str, expect: Expect) -> Case {
    with_path(DEFAULT_PATH, sql, expect)
}

const fn with_path(search_path: &'static str, sql: &'static str, expect: Expect) -> Case {
    Case {
        search_path,
        sql,
        expect,
    }
}

/// Every group of cases.
pub const GROUPS: &[&[Case]] = &[
    names::CASES,
    queries::CASES,
    writes::CASES,
    reserved::CASES,
    settings::CASES,
    functions::CASES,
    parsing::CASES,
];
