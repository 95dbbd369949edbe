//! The validated catalog: users with their groups and attributes, data sources with their
//! subscription, masks and row rules. Built only by `Catalog::from_config` (load.rs), so every
//! value here has passed validation; what depends on the cluster (column names and types) is
//! checked when a view is compiled.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Everything policy needs from proxy.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub users: Vec<User>,
    /// Schema holding the policy views.
    pub view_schema: String,
    pub data_sources: Vec<DataSource>,
}

/// A user as policies see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: BTreeSet<String>,
    pub attributes: BTreeMap<String, BTreeSet<String>>,
    /// The `IMPERSONATE_USER` permission.
    pub can_impersonate: bool,
}

impl User {
    /// Whether the user holds `key = value`.
    pub fn has_attribute(&self, key: &str, value: &str) -> bool {
        self.attributes.get(key).is_some_and(|v| v.contains(value))
    }
}

/// `[database.]schema.table` after PostgreSQL's quoting and case folding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub database: Option<String>,
    pub schema: String,
    pub table: String,
}

impl TableName {
    /// The data source's name inside its database: `schema.table`, the key of its profile
    /// rows and of its registry entry.
    pub fn key(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

impl TableName {
    /// The data source's name across databases, as configured: `[database.]schema.table`.
    /// Two databases may each register `hr.employees`; whatever the proxy keeps for all of
    /// them at once (class views, salts, pins) is keyed by this, not by `key`.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.database {
            Some(db) => write!(f, "{db}.{}.{}", self.schema, self.table),
            None => write!(f, "{}.{}", self.schema, self.table),
        }
    }
}

/// A registered table.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    /// Config key path, e.g. `data_sources[0]`, so later errors can name the item.
    pub origin: String,
    pub table: TableName,
    pub description: Option<String>,
    /// Configured salt; `None` lets sync generate one.
    pub salt: Option<String>,
    pub subscription: Subscription,
    pub masks: Vec<Mask>,
    pub row_rules: Vec<RowRule>,
}

impl DataSource {
    /// Name of the view inside the view schema: `<schema>_<table>`.
    pub fn view_name(&self) -> String {
        format!("{}_{}", self.table.schema, self.table.table)
    }
}

/// Who may query a data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// Every user in the catalog.
    Anyone,
    /// Users matching any of the lists.
    AnyOf {
        users: BTreeSet<String>,
        groups: BTreeSet<String>,
        attributes: BTreeMap<String, BTreeSet<String>>,
    },
}

impl Subscription {
    pub fn admits(&self, user: &User) -> bool {
        match self {
            Subscription::Anyone => true,
            Subscription::AnyOf {
                users,
                groups,
                attributes,
            } => users.contains(&user.name) || matches_any(user, groups, attributes),
        }
    }
}

/// "Unless the user is in group G / has attribute K = V": who a rule does not restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Exceptions {
    pub groups: BTreeSet<String>,
    pub attributes: BTreeMap<String, BTreeSet<String>>,
}

impl Exceptions {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.attributes.is_empty()
    }

    pub fn exempts(&self, user: &User) -> bool {
        matches_any(user, &self.groups, &self.attributes)
    }
}

impl fmt::Display for Exceptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!("in group {g}"))
            .collect();
        for (key, values) in &self.attributes {
            for value in values {
                parts.push(format!("has {key} = {value}"));
            }
        }
        write!(f, "{}", parts.join(" or "))
    }
}

fn matches_any(
    user: &User,
    groups: &BTreeSet<String>,
    attributes: &BTreeMap<String, BTreeSet<String>>,
) -> bool {
    !user.groups.is_disjoint(groups)
        || attributes
            .iter()
            .any(|(key, values)| values.iter().any(|v| user.has_attribute(key, v)))
}

/// A masked column.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Config key path, e.g. `data_sources[0].masks[2]`.
    pub origin: String,
    pub column: String,
    pub method: MaskMethod,
    pub unless: Exceptions,
}

/// How a masked value is computed.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskMethod {
    Null,
    /// Shown instead of the value, cast to the column's type.
    Constant(String),
    /// Salted SHA-256, hex; the column becomes text.
    Hash {
        cast_to_text: bool,
    },
    /// Every match of `pattern` replaced.
    Regex {
        pattern: String,
        replacement: String,
    },
    /// Rounded to a multiple of `step` (a SQL numeric literal).
    Round {
        step: String,
    },
    /// Truncated to the start of the unit.
    Truncate {
        unit: TruncateUnit,
    },
    /// Randomized response over `domain`, keyed by the row's `key` column.
    RandomizedResponse {
        epsilon: f64,
        domain: Vec<String>,
        key: String,
    },
}

impl fmt::Display for MaskMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskMethod::Null => write!(f, "null"),
            MaskMethod::Constant(v) => write!(f, "constant({v:?})"),
            MaskMethod::Hash { cast_to_text } => {
                write!(f, "hash (salted SHA-256, hex")?;
                if *cast_to_text {
                    write!(f, ", of the value's text form")?;
                }
                write!(f, ")")
            }
            MaskMethod::Regex {
                pattern,
                replacement,
            } => write!(f, "regex({pattern:?} → {replacement:?})"),
            MaskMethod::Round { step } => write!(f, "round({step})"),
            MaskMethod::Truncate { unit } => write!(f, "truncate({})", unit.as_str()),
            MaskMethod::RandomizedResponse {
                epsilon,
                domain,
                key,
            } => write!(
                f,
                "randomized_response(ε = {epsilon}, k = {}, keep probability {:.4}, key column {key})",
                domain.len(),
                crate::policy::masks::keep_probability(*epsilon, domain.len())
            ),
        }
    }
}

/// Units of `truncate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncateUnit {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
}

impl TruncateUnit {
    pub const ALL: [TruncateUnit; 8] = [
        TruncateUnit::Year,
        TruncateUnit::Quarter,
        TruncateUnit::Month,
        TruncateUnit::Week,
        TruncateUnit::Day,
        TruncateUnit::Hour,
        TruncateUnit::Minute,
        TruncateUnit::Second,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TruncateUnit::Year => "year",
            TruncateUnit::Quarter => "quarter",
            TruncateUnit::Month => "month",
            TruncateUnit::Week => "week",
            TruncateUnit::Day => "day",
            TruncateUnit::Hour => "hour",
            TruncateUnit::Minute => "minute",
            TruncateUnit::Second => "second",
        }
    }

    /// Whether the unit makes sense for a `date` (finer units would be a no-op).
    pub fn fits_date(self) -> bool {
        matches!(
            self,
            TruncateUnit::Year
                | TruncateUnit::Quarter
                | TruncateUnit::Month
                | TruncateUnit::Week
                | TruncateUnit::Day
        )
    }
}

/// A row-level rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RowRule {
    /// Config key path, e.g. `data_sources[0].row_rules[0]`.
    pub origin: String,
    pub filter: RowFilter,
    /// The rule restricts only members of these groups; `None`: everyone.
    pub for_groups: Option<BTreeSet<String>>,
    pub unless: Exceptions,
}

impl RowRule {
    /// Whether the rule restricts `user`.
    pub fn restricts(&self, user: &User) -> bool {
        let targeted = self
            .for_groups
            .as_ref()
            .is_none_or(|groups| !user.groups.is_disjoint(groups));
        targeted && !self.unless.exempts(user)
    }
}

/// What a row rule keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowFilter {
    /// Rows whose `column` (as text) equals one of the user's values of `attribute`.
    AttributeMatch { column: String, attribute: String },
    /// Rows where the SQL predicate holds.
    Predicate(String),
}

impl fmt::Display for RowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowFilter::AttributeMatch { column, attribute } => write!(
                f,
                "only rows where {column} is one of the user's values of attribute {attribute}"
            ),
            RowFilter::Predicate(p) => write!(f, "only rows where {p}"),
        }
    }
}
