//! Entitlements: what a user's groups and attributes mean for one data source, evaluated at
//! sync time and stored as one `profile_access` row per (user, data source).
//!
//! Why precompute: a policy view runs for every statement, and each subquery over the
//! profile tables costs an executor node and a table scan per execution (see the view-cost
//! table in DESIGN.md and `bench/`). So the view reads exactly one row: the user's row for the
//! data source. No row means not subscribed (or not in the catalog): the view returns nothing.
//! The row carries
//! - `flags`: one character per distinct rule condition, `1` if the condition lets the user
//!   through (exempt from a mask, not restricted by a row rule), `0` otherwise;
//! - `attribute_values`: the user's values of every attribute a row rule matches against, as
//!   `US key RS value US key RS value … US` (U+001F, U+001E; validation keeps them out of
//!   names and values), so "column matches one of the user's values" is one `strpos` and the
//!   view's text never changes when a user's attributes do;
//! - `salt`: the data source's salt (hash and randomized response); the query role cannot read
//!   `profile_access`, and the secure view `user_access` does not show it.

use super::model::{DataSource, Exceptions, RowFilter, User};
use std::collections::BTreeSet;

/// Separates tokens in `attribute_values`.
pub const UNIT_SEPARATOR: char = '\u{1f}';
/// Separates an attribute's key from its value inside a token.
pub const RECORD_SEPARATOR: char = '\u{1e}';

/// When a rule lets a user through: not targeted (`for_groups`), or exempt (`unless`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub for_groups: Option<BTreeSet<String>>,
    pub unless: Exceptions,
}

impl Condition {
    pub fn lets_through(&self, user: &User) -> bool {
        let targeted = self
            .for_groups
            .as_ref()
            .is_none_or(|groups| !user.groups.is_disjoint(groups));
        !targeted || self.unless.exempts(user)
    }

    /// A condition nobody ever passes needs no flag: the rule simply always applies.
    fn is_trivial(&self) -> bool {
        self.for_groups.is_none() && self.unless.is_empty()
    }
}

/// The shape of a data source's `profile_access` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPlan {
    /// Flag `i + 1` (SQL's 1-based `substr`) belongs to `conditions[i]`.
    pub conditions: Vec<Condition>,
    /// Attributes whose values the row carries, sorted.
    pub attributes: Vec<String>,
}

/// One `profile_access` row's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRow {
    pub flags: String,
    pub attribute_values: String,
}

impl AccessPlan {
    /// Distinct conditions in the order masks, then row rules, first use wins.
    pub fn of(ds: &DataSource) -> AccessPlan {
        let mut conditions: Vec<Condition> = Vec::new();
        let mask_conditions = ds.masks.iter().map(|m| Condition {
            for_groups: None,
            unless: m.unless.clone(),
        });
        let row_conditions = ds.row_rules.iter().map(|r| Condition {
            for_groups: r.for_groups.clone(),
            unless: r.unless.clone(),
        });
        for condition in mask_conditions.chain(row_conditions) {
            if !condition.is_trivial() && !conditions.contains(&condition) {
                conditions.push(condition);
            }
        }
        let attributes: BTreeSet<String> = ds
            .row_rules
            .iter()
            .filter_map(|r| match &r.filter {
                RowFilter::AttributeMatch { attribute, .. } => Some(attribute.clone()),
                RowFilter::Predicate(_) => None,
            })
            .collect();
        AccessPlan {
            conditions,
            attributes: attributes.into_iter().collect(),
        }
    }

    /// 1-based flag position of a rule's condition; `None` when the rule has no condition.
    pub fn flag_of(
        &self,
        for_groups: Option<&BTreeSet<String>>,
        unless: &Exceptions,
    ) -> Option<usize> {
        let wanted = Condition {
            for_groups: for_groups.cloned(),
            unless: unless.clone(),
        };
        self.conditions
            .iter()
            .position(|c| *c == wanted)
            .map(|i| i + 1)
    }

    /// The user's row, or `None` when the user may not query the data source at all.
    pub fn row_for(&self, ds: &DataSource, user: &User) -> Option<AccessRow> {
        if !ds.subscription.admits(user) {
            return None;
        }
        let flags = self
            .conditions
            .iter()
            .map(|c| if c.lets_through(user) { '1' } else { '0' })
            .collect();
        let attribute_values = encode_attributes(self.attributes.iter().flat_map(|key| {
            user.attributes
                .get(key)
                .into_iter()
                .flatten()
                .map(move |value| (key.as_str(), value.as_str()))
        }));
        Some(AccessRow {
            flags,
            attribute_values,
        })
    }
}

/// `US key RS value US key RS value … US`, or empty when there are no pairs.
pub fn encode_attributes<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if out.is_empty() {
            out.push(UNIT_SEPARATOR);
        }
        out.push_str(key);
        out.push(RECORD_SEPARATOR);
        out.push_str(value);
        out.push(UNIT_SEPARATOR);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::*;
    use std::collections::BTreeMap;

    fn user(name: &str, groups: &[&str], attrs: &[(&str, &str)]) -> User {
        let mut attributes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (k, v) in attrs {
            attributes
                .entry(k.to_string())
                .or_default()
                .insert(v.to_string());
        }
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            attributes,
            can_impersonate: false,
        }
    }

    fn unless_group(g: &str) -> Exceptions {
        Exceptions {
            groups: [g.to_string()].into(),
            attributes: BTreeMap::new(),
        }
    }

    fn source() -> DataSource {
        let mask = |column: &str, unless: Exceptions| Mask {
            origin: String::new(),
            column: column.into(),
            method: MaskMethod::Null,
            unless,
        };
        DataSource {
            origin: "data_sources[0]".into(),
            table: TableName {
                database: None,
                schema: "hr".into(),
                table: "employees".into(),
            },
            description: None,
            salt: None,
            subscription: Subscription::AnyOf {
                users: ["carol".to_string()].into(),
                groups: ["hr".to_string()].into(),
                attributes: [("region".to_string(), ["EU".to_string()].into())].into(),
            },
            masks: vec![
                mask("ssn", unless_group("hr")),
                mask("email", Exceptions::default()),
                mask("name", unless_group("hr")),
            ],
            row_rules: vec![
                RowRule {
                    origin: String::new(),
                    filter: RowFilter::AttributeMatch {
                        column: "region".into(),
                        attribute: "region".into(),
                    },
                    for_groups: None,
                    unless: unless_group("hr"),
                },
                RowRule {
                    origin: String::new(),
                    filter: RowFilter::Predicate("dept <> 'hr'".into()),
                    for_groups: Some(["contractors".to_string()].into()),
                    unless: Exceptions::default(),
                },
            ],
        }
    }

    #[test]
    fn conditions_are_deduplicated_and_trivial_ones_dropped() {
        let plan = AccessPlan::of(&source());
        assert_eq!(plan.conditions.len(), 2);
        assert_eq!(plan.flag_of(None, &unless_group("hr")), Some(1));
        let contractors: BTreeSet<String> = ["contractors".to_string()].into();
        assert_eq!(
            plan.flag_of(Some(&contractors), &Exceptions::default()),
            Some(2)
        );
        assert_eq!(plan.flag_of(None, &Exceptions::default()), None);
        assert_eq!(plan.attributes, ["region"]);
    }

    #[test]
    fn rows_carry_flags_and_delimited_attribute_values() {
        let ds = source();
        let plan = AccessPlan::of(&ds);
        let admin = user("admin", &["hr"], &[]);
        let analyst = user(
            "analyst",
            &["contractors"],
            &[("region", "EU"), ("region", "US"), ("team", "x")],
        );
        let carol = user("carol", &[], &[]);
        let nobody = user("nobody", &[], &[("region", "US")]);
        assert_eq!(
            plan.row_for(&ds, &admin),
            Some(AccessRow {
                flags: "11".into(),
                attribute_values: String::new()
            })
        );
        assert_eq!(
            plan.row_for(&ds, &analyst),
            Some(AccessRow {
                flags: "00".into(),
                attribute_values: "\u{1f}region\u{1e}EU\u{1f}region\u{1e}US\u{1f}".into()
            })
        );
        assert_eq!(
            plan.row_for(&ds, &carol),
            Some(AccessRow {
                flags: "01".into(),
                attribute_values: String::new()
            })
        );
        assert_eq!(plan.row_for(&ds, &nobody), None);
    }
}
