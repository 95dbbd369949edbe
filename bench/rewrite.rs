//! Parse + resolve + rewrite cost per statement, uncached and through the shared cache.
//! `cargo bench --bench rewrite`; figures are quoted in bench/README.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use redveil::rewrite::{
    parse_search_path_list, rewrite, QualifiedName, Registered, Registry, RewriteCache, Scope,
};

fn registry() -> Registry {
    let tables = [
        ("hr", "employees"),
        ("sales", "orders"),
        ("sales", "customers"),
    ];
    Registry::new(
        "immuta",
        tables.iter().map(|(schema, table)| {
            (
                QualifiedName::new(*schema, *table),
                Registered {
                    data_source: format!("{schema}.{table}"),
                    view: QualifiedName::new("immuta", format!("{schema}_{table}")),
                    prepared_view: QualifiedName::new("immuta", format!("{schema}_{table}")),
                    writable: false,
                },
            )
        }),
    )
}

/// A generated dashboard query of about 5 kB: many aggregates over a join with a CTE.
fn report_query() -> String {
    let mut columns = Vec::new();
    for i in 0..60 {
        columns.push(format!(
            "sum(CASE WHEN e.dept = 'd{i}' THEN o.amount ELSE 0 END) AS dept_{i}_amount"
        ));
    }
    format!(
        "WITH recent AS (SELECT * FROM sales.orders WHERE created > now() - interval '30 days') \
         SELECT e.region, date_trunc('month', o.created) AS month, {} \
         FROM recent o JOIN hr.employees e ON e.id = o.employee_id \
         JOIN sales.customers c ON c.id = o.customer_id \
         WHERE c.country = ANY($1) GROUP BY 1, 2 ORDER BY 1, 2",
        columns.join(", ")
    )
}

fn statements() -> Vec<(&'static str, String)> {
    vec![
        ("pk lookup", "SELECT * FROM hr.employees WHERE id = $1".into()),
        ("unregistered", "SELECT * FROM public.events WHERE id = $1".into()),
        ("unqualified via search_path", "SELECT name, salary FROM employees WHERE dept = 'eng'".into()),
        ("join", "SELECT e.name, o.amount FROM hr.employees e JOIN sales.orders o ON o.employee_id = e.id WHERE o.amount > 100".into()),
        ("aggregate", "SELECT dept, region, count(*), avg(salary) FROM hr.employees GROUP BY dept, region ORDER BY 3 DESC".into()),
        ("window", "SELECT name, rank() OVER (PARTITION BY dept ORDER BY salary DESC) FROM hr.employees".into()),
        ("cte + subquery", "WITH top AS (SELECT * FROM hr.employees WHERE salary > (SELECT avg(salary) FROM hr.employees)) SELECT region, count(*) FROM top GROUP BY region".into()),
        ("exists", "SELECT * FROM sales.customers c WHERE EXISTS (SELECT 1 FROM sales.orders o WHERE o.customer_id = c.id)".into()),
        ("psql \\d", "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(employees)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3".into()),
        ("psql \\dt", "SELECT n.nspname as \"Schema\", c.relname as \"Name\" FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' ORDER BY 1,2".into()),
        ("5 kB report", report_query()),
    ]
}

fn bench(c: &mut Criterion) {
    let registry = registry();
    let search_path = parse_search_path_list("hr, public", "redveil_query");
    let scope = Scope {
        registry: &registry,
        database: "demo",
        search_path: &search_path,
        backend_role: "redveil_query",
        dialect: redveil::dialect::Dialect::Postgres,
        lexing: redveil::dialect::Lexing::Standard,
    };
    let cache = RewriteCache::new(1024);
    let mut uncached = c.benchmark_group("uncached");
    for (name, sql) in statements() {
        uncached.bench_function(name, |b| b.iter(|| rewrite(black_box(&sql), scope)));
    }
    uncached.finish();
    let mut cached = c.benchmark_group("cached");
    for (name, sql) in statements() {
        cached.bench_function(name, |b| b.iter(|| cache.rewrite(black_box(&sql), scope)));
    }
    cached.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
