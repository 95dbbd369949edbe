//! The demo's proxy-side catalog in one place: its users (password = name, demo only) and the
//! proxy.toml `redveil demo` writes. Later features extend the demo here.

use crate::auth::ScramVerifier;
use crate::demo::dataset::DemoBackend;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

/// Demo users; each one's password is its name.
pub const USERS: [&str; 3] = ["admin", "analyst", "bi_service"];

/// A proxy.toml for the demo cluster.
pub fn proxy_toml(listen: SocketAddr, backend: &DemoBackend, cert: &Path, key: &Path) -> String {
    let mut toml = format!(
        "# Written by `redveil demo`; demo passwords equal the user names.\n\
         [listen]\naddress = \"{listen}\"\n\n\
         [tls]\nmode = \"require\"\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [backend]\nhost = \"{}\"\nport = {}\ndatabase = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n\n\
         [pool]\nmode = \"transaction\"\nsize = 10\n",
        cert.display(),
        key.display(),
        backend.host,
        backend.port,
        backend.database,
        backend.query_user,
        backend.query_password,
    );
    for user in USERS {
        let verifier = ScramVerifier::generate(user);
        let _ = write!(
            toml,
            "\n[[users]]\nname = \"{user}\"\npassword = \"{verifier}\"\n"
        );
    }
    toml
}
