//! Table-driven rewrite cases: input SQL, search_path, and the text sent or the refusal.

use super::*;

fn registry() -> Registry {
    let entry = |schema: &str, table: &str, writable: bool| {
        (
            QualifiedName::new(schema, table),
            Registered {
                data_source: format!("{schema}.{table}"),
                view: QualifiedName::new("immuta", format!("{schema}_{table}")),
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

fn run(sql: &str, search_path: &str) -> Result<Rewritten, Denial> {
    let registry = registry();
    let path = parse_search_path_list(search_path, "redveil_query");
    rewrite(
        sql,
        Scope {
            registry: &registry,
            database: "demo",
            search_path: &path,
        },
    )
}

#[test]
fn dump() {
    for line in std::fs::read_to_string("/tmp/rw/in.txt").unwrap().lines() {
        let (path, sql) = line.split_once(" | ").unwrap();
        match run(sql, path) {
            Ok(r) => println!("{sql}\n  => {:?} {:?}", r.sql, r.data_sources),
            Err(d) => println!("{sql}\n  => DENY {}", d.message),
        }
    }
}
