//! The registry the rewriter target runs against: the tables of the rewrite unit tests
//! (src/rewrite/tests), and the search paths a fuzz input chooses from with its first byte.

use redveil::rewrite::{parse_search_path_list, QualifiedName, Registered, Registry};

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

/// `hr.employees`, `public.orders`, `"Sales"."Deals"` (read-only) and `ops.tickets`
/// (writable), read through `immuta.<schema>_<table>`.
pub fn registry() -> Registry {
    let entry = |schema: &str, table: &str, writable: bool| {
        (
            QualifiedName::new(schema, table),
            Registered {
                data_source: format!("{schema}.{table}"),
                view: QualifiedName::new("immuta", format!("{schema}_{table}")),
                prepared_view: QualifiedName::new("immuta", format!("{schema}_{table}")),
                writable,
            },
        )
    };
    Registry::new(
        "immuta",
        [
            entry("hr", "employees", false),
            entry("public", "orders", false),
            entry("Sales", "Deals", false),
            entry("ops", "tickets", true),
        ],
    )
}

/// The search path chosen by `selector`, `$user` resolved as the backend role.
pub fn search_path(selector: u8) -> Vec<String> {
    let raw = SEARCH_PATHS[usize::from(selector) % SEARCH_PATHS.len()];
    parse_search_path_list(raw, BACKEND_ROLE)
}
