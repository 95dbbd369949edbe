//! The registry the rewriter target runs against: the tables of the rewrite unit tests
//! (src/rewrite/tests), and the search paths a fuzz input chooses from with its first byte.

use redveil::rewrite::{parse_search_path_list, Registry};

/// Search paths as the server would hold them; the input's first byte picks one.
pub const SEARCH_PATHS: [&str; 8] = [
    "\"$user\", public",
    "hr",
    "public, hr",
    "\"Sales\"",
    "Sales, ops",
    "\"Hr\"",
    "ops",
    "",
];

pub const DATABASE: &str = "demo";
pub const BACKEND_ROLE: &str = "redveil_query";

/// The registry of the rewrite unit tests.
pub fn registry() -> Registry {
    redveil::rewrite::sample_registry()
}

/// The search path chosen by `selector`, `$user` resolved as the backend role.
pub fn search_path(selector: u8) -> Vec<String> {
    let raw = SEARCH_PATHS[usize::from(selector) % SEARCH_PATHS.len()];
    parse_search_path_list(raw, BACKEND_ROLE)
}
