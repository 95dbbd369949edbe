//! The registry the rewrite unit tests and the rewriter fuzz target run against (one
//! definition, so both judge the same tables).

use super::{QualifiedName, Registered, Registry};

/// `hr.employees`, `public.orders`, `"Sales"."Deals"` (read-only) and `ops.tickets`
/// (writable), read through `immuta.<schema>_<table>`.
pub fn sample_registry() -> Registry {
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
