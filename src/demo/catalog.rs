//! The demo's proxy-side catalog in one place: its users (password = name, demo only), their
//! groups, attributes and permissions, the registered `hr.employees` with its policies, and
//! the proxy.toml `redveil demo` writes. Later features extend the demo here.

use crate::auth::ScramVerifier;
use crate::demo::dataset::DemoBackend;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

/// Demo users; each one's password is its name.
pub const USERS: [&str; 3] = ["admin", "analyst", "bi_service"];

/// What each demo user is to the policies, as TOML keys of its `[[users]]` entry.
fn profile(user: &str) -> &'static str {
    match user {
        "admin" => "groups = [\"hr\"]\npermissions = [\"IMPERSONATE_USER\"]\n",
        "analyst" => "attributes = { region = [\"EU\"] }\n",
        "bi_service" => "permissions = [\"IMPERSONATE_USER\"]\n",
        _ => "",
    }
}

/// `hr.employees` and its policies: members of `hr` see everything; everyone else sees only
/// rows of their own regions, no ssn, salaries rounded to 10 000, hashed e-mails, names cut
/// to their first letter and departments under randomized response (ε = 1).
pub const DATA_SOURCES_TOML: &str = r#"
[[data_sources]]
table = "hr.employees"
description = "Employees (demo data)"

[[data_sources.masks]]
column = "ssn"
method = "null"
unless_groups = ["hr"]

[[data_sources.masks]]
column = "salary"
method = "round"
step = 10000
unless_groups = ["hr"]

[[data_sources.masks]]
column = "email"
method = "hash"
unless_groups = ["hr"]

[[data_sources.masks]]
column = "name"
method = "regex"
pattern = "^(.).*$"
replacement = '\1***'
unless_groups = ["hr"]

[[data_sources.masks]]
column = "dept"
method = "randomized_response"
epsilon = 1.0
domain = ["hr", "eng", "sales", "ops"]
key = "id"
unless_groups = ["hr"]

[[data_sources.row_rules]]
column = "region"
attribute = "region"
unless_groups = ["hr"]
"#;

/// The demo catalog as TOML: `[control]`, the users (with verifiers of `password_of(name)`)
/// and the data sources.
pub fn catalog_toml(backend: &DemoBackend, verifier_of: impl Fn(&str) -> String) -> String {
    let mut toml = format!(
        "\n[control]\nuser = \"{}\"\npassword = \"{}\"\n",
        backend.system_user, backend.system_password
    );
    for user in USERS {
        let _ = write!(
            toml,
            "\n[[users]]\nname = \"{user}\"\npassword = \"{}\"\n{}",
            verifier_of(user),
            profile(user)
        );
    }
    toml.push_str(DATA_SOURCES_TOML);
    toml
}

/// A proxy.toml for the demo cluster.
pub fn proxy_toml(
    listen: SocketAddr,
    backend: &DemoBackend,
    cert: &Path,
    key: &Path,
    dialect: crate::dialect::Dialect,
) -> String {
    let mut toml = format!(
        "# Written by `redveil demo`; demo passwords equal the user names.\n\
         [listen]\naddress = \"{listen}\"\n\n\
         [tls]\nmode = \"require\"\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [backend]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\ndialect = \"{}\"\n\n\
         [pool]\nmode = \"transaction\"\nsize = 10\n",
        cert.display(),
        key.display(),
        backend.host,
        backend.port,
        backend.database,
        backend.query_user,
        backend.query_password,
        dialect.name(),
    );
    toml.push_str(&catalog_toml(backend, |user| {
        ScramVerifier::generate(user).to_string()
    }));
    toml
}
