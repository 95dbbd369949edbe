//! The catalog as written in proxy.toml: users, the view schema, data sources and their
//! policies. This file only fixes their TOML shape; `policy::Catalog::from_config` checks the
//! meaning (methods and their parameters, regexes, predicates) and builds the typed model.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `[[users]]`: someone who may log in through the proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name, compared exactly as the client sends it.
    pub name: String,
    /// SCRAM-SHA-256 verifier (`redveil passwd` prints one); never a plaintext password.
    pub password: String,
    /// Optional md5 verifier (`md5` + hex), needed only where `auth.method = "md5"`.
    #[serde(default)]
    pub md5: Option<String>,
    /// Groups the user belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attributes: key → values, e.g. `region = ["EU"]`.
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Permissions, e.g. `IMPERSONATE_USER`.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `[views]`: where policy views live in the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ViewsConfig {
    /// Schema of the per-data-source views.
    pub schema: String,
}

impl Default for ViewsConfig {
    fn default() -> Self {
        Self {
            schema: "immuta".into(),
        }
    }
}

/// `[[data_sources]]`: a registered table and its policies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceConfig {
    /// `[database.]schema.table`, with PostgreSQL's quoting and case-folding rules.
    pub table: String,
    /// Free text shown by explain-policy.
    #[serde(default)]
    pub description: Option<String>,
    /// Salt of `hash` and `randomized_response` masks. Default: a random salt that sync
    /// generates once and keeps in the cluster, where the query role cannot read it.
    #[serde(default)]
    pub salt: Option<String>,
    /// Who may query the data source; absent means every user in the catalog.
    #[serde(default)]
    pub subscription: Option<SubscriptionConfig>,
    /// Column masks, at most one per column.
    #[serde(default)]
    pub masks: Vec<MaskConfig>,
    /// Row-level rules; a row is visible only if every rule lets it through.
    #[serde(default)]
    pub row_rules: Vec<RowRuleConfig>,
}

/// `[data_sources.subscription]`: a user is subscribed if any of the lists matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// These users by name.
    #[serde(default)]
    pub users: Vec<String>,
    /// Members of any of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Users holding any of these attribute values.
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// A number in TOML, integer or float, kept as written so SQL gets the same literal.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum NumberConfig {
    Integer(i64),
    Float(f64),
}

/// `[[data_sources.masks]]`: one masked column. Which parameters apply depends on `method`;
/// the others must be absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// The masked column.
    pub column: String,
    /// `null`, `constant`, `hash`, `regex`, `round`, `truncate` or `randomized_response`.
    pub method: String,
    /// `constant`: the value shown instead, cast to the column's type.
    #[serde(default)]
    pub value: Option<String>,
    /// `regex`: pattern whose every match is replaced.
    #[serde(default)]
    pub pattern: Option<String>,
    /// `regex`: the replacement; `\1` refers to the first group.
    #[serde(default)]
    pub replacement: Option<String>,
    /// `round`: numbers are rounded to a multiple of this step.
    #[serde(default)]
    pub step: Option<NumberConfig>,
    /// `truncate`: `year`, `quarter`, `month`, `week`, `day` (and `hour`, `minute`, `second`
    /// for timestamps).
    #[serde(default)]
    pub unit: Option<String>,
    /// `randomized_response`: the privacy parameter ε.
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// `randomized_response`: every value the column can take.
    #[serde(default)]
    pub domain: Option<Vec<String>>,
    /// `randomized_response`: the column identifying a row, so the noise is the same on
    /// every read of that row.
    #[serde(default)]
    pub key: Option<String>,
    /// `hash`: allow a non-text column; its text form is hashed.
    #[serde(default)]
    pub cast_to_text: Option<bool>,
    /// The raw value is shown to members of any of these groups.
    #[serde(default)]
    pub unless_groups: Vec<String>,
    /// The raw value is shown to users holding any of these attribute values.
    #[serde(default)]
    pub unless_attributes: BTreeMap<String, Vec<String>>,
}

/// `[[data_sources.row_rules]]`: either `column` + `attribute`, or `where`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowRuleConfig {
    /// Only rows whose `column` equals one of the user's values of `attribute`.
    #[serde(default)]
    pub column: Option<String>,
    /// See `column`.
    #[serde(default)]
    pub attribute: Option<String>,
    /// Only rows where this SQL predicate over the table's columns holds.
    #[serde(default, rename = "where")]
    pub predicate: Option<String>,
    /// The rule applies only to members of these groups (default: to everyone).
    #[serde(default)]
    pub for_groups: Option<Vec<String>>,
    /// Members of any of these groups are not restricted by the rule.
    #[serde(default)]
    pub unless_groups: Vec<String>,
    /// Users holding any of these attribute values are not restricted by the rule.
    #[serde(default)]
    pub unless_attributes: BTreeMap<String, Vec<String>>,
}

/// `[control]`: the control-path login (catalog sync: schemas, views, grants, profile).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// The system role; it owns the `immuta_*` schemas and the views.
    pub user: String,
    /// Its password (prefer `password_env`).
    pub password: Option<String>,
    /// Name of an environment variable holding the password; wins over `password`.
    pub password_env: Option<String>,
    /// Connections in the control-path pool.
    pub pool_size: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            user: "redveil_system".into(),
            password: None,
            password_env: None,
            pool_size: 2,
        }
    }
}

impl ControlConfig {
    /// The password after applying `password_env`.
    pub fn resolved_password(&self) -> Option<String> {
        self.password_env
            .as_ref()
            .and_then(std::env::var_os)
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| self.password.clone())
    }
}
