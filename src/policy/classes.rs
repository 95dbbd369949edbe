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
//! A class view reads nothing from the profile tables. It is gated on `immuta.access`, which
//! the proxy pins with the identity: one token `<source id>:<flags>.<digest>` per data source
//! the user may query; a session whose pinned entitlements do not name the class sees no rows.
//! The salt (`immuta.salt_<source id>`) and the user's attribute values (`immuta.attributes`)
//! are pinned the same way. These are `immuta.*` settings: the deny rules keep clients from
//! reading or writing them, exactly as they guard `immuta.user`, which the canonical views
//! trust, and from reading other sessions' statements (`pg_stat_activity`), which carry pins. Direct connections keep using the canonical views, joined to the profile.

use super::entitle::{encode_attributes, AccessPlan};
use super::model::{Catalog, DataSource, MaskMethod, User};
use crate::session::quote_literal;
use std::collections::{BTreeMap, BTreeSet};

/// Where sync puts class views; clients may not name it.
pub const CLASSES_SCHEMA: &str = "immuta_classes";
/// `' <source id>:<flags>.<digest> …'`: the classes the effective user belongs to.
pub const ACCESS_SETTING: &str = "immuta.access";
/// The effective user's attribute values, `US key RS value US …` as in `profile_access`.
pub const ATTRIBUTES_SETTING: &str = "immuta.attributes";
/// PostgreSQL truncates longer identifiers (NAMEDATALEN − 1).
const MAX_IDENTIFIER: usize = 63;

/// A stable name for a data source in setting names and tokens: setting names must be plain
/// identifiers, table names need not be.
pub fn source_id(ds: &DataSource) -> String {
    hex_sha256(&ds.table.id())[..16].to_string()
}

/// `immuta.salt_<source id>`.
pub fn salt_setting(ds: &DataSource) -> String {
    format!("immuta.salt_{}", source_id(ds))
}

/// What `immuta.access` holds for a member of the class, delimited so no token matches
/// inside another. Flags are positions in the data source's list of conditions, so the token
/// also carries a digest of that list: after a reload reorders or changes the conditions, a
/// pin made under the old list opens none of the new class views (a `c10` may mean something
/// else now) until the proxy pins again.
pub fn access_token(ds: &DataSource, flags: &str) -> String {
    format!(" {}:{flags}.{} ", source_id(ds), conditions_digest(ds))
}

fn conditions_digest(ds: &DataSource) -> String {
    let text: String = AccessPlan::of(ds)
        .conditions
        .iter()
        .map(|c| {
            format!(
                "{:?}|{:?}|{:?};",
                c.for_groups, c.unless.groups, c.unless.attributes
            )
        })
        .collect();
    hex_sha256(&text)[..8].to_string()
}

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
    /// `immuta.user` and the class settings, as (name, value).
    pub settings: Vec<(String, String)>,
    /// One statement setting all of `settings`.
    pub pin_sql: String,
}

impl Entitlement {
    /// `user` may be unknown to the catalog: then it may query nothing, and the pin says so.
    pub fn of(catalog: &Catalog, salts: &BTreeMap<String, String>, user: &str) -> Entitlement {
        let known = catalog.user(user);
        let mut views = BTreeMap::new();
        let mut access = String::from(" ");
        let mut salt_pins = Vec::new();
        for ds in &catalog.data_sources {
            let Some(row) = known.and_then(|u| AccessPlan::of(ds).row_for(ds, u)) else {
                continue;
            };
            access.push_str(access_token(ds, &row.flags).trim_start());
            views.insert(ds.table.id(), class_view_name(ds, &row.flags));
            let salted = ds.masks.iter().any(|m| {
                matches!(
                    m.method,
                    MaskMethod::Hash { .. } | MaskMethod::RandomizedResponse { .. }
                )
            });
            if let Some(salt) = salts.get(&ds.table.id()).filter(|_| salted) {
                salt_pins.push((salt_setting(ds), salt.clone()));
            }
        }
        let attributes = known.map(attribute_values).unwrap_or_default();
        let settings: Vec<(String, String)> = [
            ("immuta.user".to_string(), user.to_string()),
            (ACCESS_SETTING.to_string(), access),
            (ATTRIBUTES_SETTING.to_string(), attributes),
        ]
        .into_iter()
        .chain(salt_pins)
        .collect();
        let pins: Vec<String> = settings
            .iter()
            .map(|(name, value)| set_config(name, value))
            .collect();
        Entitlement {
            views,
            pin_sql: format!("SELECT {}", pins.join(", ")),
            settings,
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

fn set_config(name: &str, value: &str) -> String {
    format!(
        "pg_catalog.set_config({}, {}, false)",
        quote_literal(name),
        quote_literal(value)
    )
}

/// Every attribute value of `user`, in the `profile_access` format.
fn attribute_values(user: &User) -> String {
    encode_attributes(
        user.attributes
            .iter()
            .flat_map(|(key, values)| values.iter().map(move |v| (key.as_str(), v.as_str()))),
    )
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
        assert_eq!(source_id(ds).len(), 16);
        assert!(salt_setting(ds).starts_with("immuta.salt_"));
    }

    #[test]
    fn entitlements_name_each_users_class() {
        let cat = catalog();
        let salts: BTreeMap<String, String> =
            [("hr.employees".to_string(), "s4lt".to_string())].into();
        let analyst = Entitlement::of(&cat, &salts, "analyst");
        let admin = Entitlement::of(&cat, &salts, "admin");
        let nobody = Entitlement::of(&cat, &salts, "nobody");
        assert_eq!(analyst.views["hr.employees"], "hr_employees__c0");
        assert_eq!(admin.views["hr.employees"], "hr_employees__c1");
        assert!(nobody.views.is_empty());
        assert_ne!(analyst.signature(), admin.signature());
        let id = source_id(&cat.data_sources[0]);
        assert!(
            analyst
                .pin_sql
                .contains(&format!("'{}'", access_token(&cat.data_sources[0], "0"))),
            "{}",
            analyst.pin_sql
        );
        assert!(analyst.pin_sql.contains(&format!("' {id}:0.")));
        assert!(analyst.pin_sql.contains("'\u{1f}region\u{1e}EU\u{1f}'"));
        assert!(analyst
            .pin_sql
            .contains(&format!("'immuta.salt_{id}', 's4lt'")));
        assert!(nobody.pin_sql.contains("'immuta.access', ' '"));
        assert!(!nobody.pin_sql.contains("salt"));
        assert_eq!(
            realized_classes(&cat, &cat.data_sources[0]),
            ["0".to_string(), "1".to_string()].into()
        );
    }

    /// Two databases may each register `hr.employees`: their classes, tokens, salts and
    /// views must never stand in for each other.
    #[test]
    fn the_same_table_in_two_databases_is_two_sources() {
        let cat = catalog_with(
            "\n[[data_sources]]\ntable = \"other.hr.employees\"\n\
             [[data_sources.masks]]\ncolumn = \"email\"\nmethod = \"hash\"\n",
        );
        let (here, there) = (&cat.data_sources[0], &cat.data_sources[1]);
        assert_ne!(source_id(here), source_id(there));
        let salts: BTreeMap<String, String> = [
            ("hr.employees".to_string(), "here".to_string()),
            ("other.hr.employees".to_string(), "there".to_string()),
        ]
        .into();
        let admin = Entitlement::of(&cat, &salts, "admin");
        assert_eq!(admin.views["hr.employees"], "hr_employees__c1");
        assert_eq!(admin.views["other.hr.employees"], "hr_employees__c");
        assert!(admin
            .pin_sql
            .contains(&format!("'{}", access_token(here, "1"))));
        assert!(admin
            .pin_sql
            .contains(&format!("{}'", access_token(there, ""))));
        assert!(admin
            .pin_sql
            .contains(&format!("'immuta.salt_{}', 'there'", source_id(there))));
        assert!(admin
            .pin_sql
            .contains(&format!("'immuta.salt_{}', 'here'", source_id(here))));
        assert_eq!(cat.data_source("hr.employees"), Some(here));
        assert_eq!(cat.data_source("other.hr.employees"), Some(there));
        assert!(!cat.subscribed("nobody", "other.hr.employees"));
    }

    /// The same flags under a reordered list of conditions are another class.
    #[test]
    fn tokens_change_with_the_conditions_they_index() {
        let cat = catalog();
        let ds = &cat.data_sources[0];
        let mut reordered = ds.clone();
        reordered.masks.reverse();
        let mut renamed = ds.clone();
        renamed.masks[0].unless.groups = ["finance".to_string()].into();
        assert_ne!(access_token(ds, "1"), access_token(&renamed, "1"));
        assert_eq!(access_token(ds, "1"), access_token(&ds.clone(), "1"));
        // The demo's masks share one condition, so their order does not matter.
        assert_eq!(access_token(ds, "1"), access_token(&reordered, "1"));
    }
}
