//! Class views: the proxy's fast path to a data source's policy.
//!
//! PostgreSQL compiles every expression of a plan at each execution start, evaluated or not,
//! and checks EXECUTE on every function in it. So the canonical view, which decides every mask
//! with a CASE on the joined `profile_access` row, makes an exempt user pay for masks never
//! applied, and every user pay for the join (see bench/README.md: 2.9× a raw lookup's server
//! instructions). Users with the same flags for a data source (a *class*: the same masks and
//! row rules apply to them) can share a view in which those decisions are already made: raw
//! columns where the class is exempt, the mask where it is not, no CASE, no join. Sync creates
//! one per class that some user of the catalog falls in, in `immuta_classes`; the proxy
//! rewrites a registered table to the effective user's class view.
//!
//! A class view joins the entitlement row of the session's user, found through the token the
//! proxy pins (see tokens.rs), and admits only rows whose flags are the class's: under another
//! class's token, or none, it shows nothing. Salt and attribute values come from that row too;
//! no setting a client could write carries anything but the token.

use super::entitle::AccessPlan;
use super::model::{Catalog, DataSource};
use super::tokens::Tokens;
use std::collections::{BTreeMap, BTreeSet};

/// Where sync puts class views; clients may not name it.
pub const CLASSES_SCHEMA: &str = "immuta_classes";
/// PostgreSQL truncates longer identifiers (NAMEDATALEN − 1).
const MAX_IDENTIFIER: usize = 63;

/// `<view name>__c<flags>`, or a shortened name with a digest when that is too long.
pub fn class_view_name(ds: &DataSource, flags: &str) -> String {
    let name = format!("{}__c{flags}", ds.view_name());
    if name.len() <= MAX_IDENTIFIER {
        return name;
    }
    let mut prefix = 40;
    while !name.is_char_boundary(prefix) {
        prefix -= 1;
    }
    format!("{}_{}", &name[..prefix], &hex_sha256(&name)[..16])
}

/// The flags of every class of `ds` that some user of `catalog` falls in.
pub fn realized_classes(catalog: &Catalog, ds: &DataSource) -> BTreeSet<String> {
    let plan = AccessPlan::of(ds);
    catalog
        .users
        .iter()
        .filter_map(|user| plan.row_for(ds, user).map(|row| row.flags))
        .collect()
}

/// What the proxy pins for one effective user, and which class view it reads per data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// Data source id (`TableName::id`) → class view name (inside `CLASSES_SCHEMA`), for
    /// those the user may query.
    pub views: BTreeMap<String, String>,
    /// The value of `immuta.token` for this user (empty for a user the catalog does not know:
    /// no view admits it).
    pub token: String,
}

impl Entitlement {
    /// `user` may be unknown to the catalog: then it may query nothing, and the pin says so.
    pub fn of(catalog: &Catalog, tokens: &Tokens, user: &str) -> Entitlement {
        let known = catalog.user(user);
        let mut views = BTreeMap::new();
        for ds in &catalog.data_sources {
            let Some(row) = known.and_then(|u| AccessPlan::of(ds).row_for(ds, u)) else {
                continue;
            };
            views.insert(ds.table.id(), class_view_name(ds, &row.flags));
        }
        Entitlement {
            views,
            token: tokens.of(user).unwrap_or_default().to_string(),
        }
    }

    /// Users with equal signatures read the same views, so they can share rewrites.
    pub fn signature(&self) -> String {
        self.views
            .values()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{1f}")
    }
}

pub(super) fn hex_sha256(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    fn catalog() -> Catalog {
        catalog_with("")
    }

    fn catalog_with(extra: &str) -> Catalog {
        let backend = crate::demo::dataset::DemoBackend {
            host: "127.0.0.1".into(),
            port: 5432,
            database: "demo".into(),
            query_user: "q".into(),
            query_password: "q".into(),
            system_user: "s".into(),
            system_password: "s".into(),
        };
        let text = "[tls]\nmode = \"disable\"\n".to_string()
            + &crate::demo::catalog::catalog_toml(&backend, |u| {
                crate::auth::ScramVerifier::generate(u).to_string()
            })
            + extra;
        let config = crate::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        Catalog::from_config(&config).unwrap()
    }

    #[test]
    fn names_fit_identifiers() {
        let cat = catalog();
        let ds = &cat.data_sources[0];
        assert_eq!(class_view_name(ds, "01"), "hr_employees__c01");
        let mut long = ds.clone();
        long.table.table = "t".repeat(60);
        let name = class_view_name(&long, "0101");
        assert!(name.len() <= MAX_IDENTIFIER, "{name}");
        assert_ne!(name, class_view_name(&long, "0100"));
    }

    #[test]
    fn entitlements_name_each_users_class_and_token() {
        let cat = catalog();
        let tokens = Tokens::issue(&cat, "t");
        let analyst = Entitlement::of(&cat, &tokens, "analyst");
        let admin = Entitlement::of(&cat, &tokens, "admin");
        let nobody = Entitlement::of(&cat, &tokens, "nobody");
        assert_eq!(analyst.views["hr.employees"], "hr_employees__c0");
        assert_eq!(admin.views["hr.employees"], "hr_employees__c1");
        assert!(nobody.views.is_empty());
        assert_ne!(analyst.signature(), admin.signature());
        assert_eq!(analyst.token, tokens.of("analyst").unwrap());
        assert_ne!(analyst.token, admin.token);
        assert_eq!(nobody.token, "");
        assert_eq!(
            realized_classes(&cat, &cat.data_sources[0]),
            ["0".to_string(), "1".to_string()].into()
        );
    }

    /// Two databases may each register `hr.employees`: their classes and views must never
    /// stand in for each other.
    #[test]
    fn the_same_table_in_two_databases_is_two_sources() {
        let cat = catalog_with(
            "\n[[data_sources]]\ntable = \"other.hr.employees\"\n\
             [[data_sources.masks]]\ncolumn = \"email\"\nmethod = \"hash\"\n",
        );
        let (here, there) = (&cat.data_sources[0], &cat.data_sources[1]);
        let admin = Entitlement::of(&cat, &Tokens::issue(&cat, "t"), "admin");
        assert_eq!(admin.views["hr.employees"], "hr_employees__c1");
        assert_eq!(admin.views["other.hr.employees"], "hr_employees__c");
        assert_eq!(cat.data_source("hr.employees"), Some(here));
        assert_eq!(cat.data_source("other.hr.employees"), Some(there));
        assert!(!cat.subscribed("nobody", "other.hr.employees"));
    }
}
