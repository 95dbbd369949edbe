//! Builds the typed catalog from proxy.toml's sections and reports every problem as
//! (key path, message), which `config` turns into `line N: key: message`. What can only be
//! checked against the cluster (does the column exist, is it text) waits for the compiler.

use super::model::*;
use super::sql;
use crate::config::{
    Config, DataSourceConfig, MaskConfig, NumberConfig, RowRuleConfig, SubscriptionConfig,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Schemas sync owns; the view schema must be another one.
pub const RESERVED_SCHEMAS: [&str; 4] = [
    "immuta_system",
    "immuta_functions",
    "immuta_procedures",
    "immuta_classes",
];

/// The permissions users may hold.
pub const PERMISSIONS: [&str; 1] = ["IMPERSONATE_USER"];

/// The characters that delimit attribute values in `profile_access.immuta_values`.
const DELIMITERS: [char; 2] = ['\u{1e}', '\u{1f}'];

type Problems = Vec<(String, String)>;

impl Catalog {
    /// Validates the catalog parts of a configuration.
    pub fn from_config(config: &Config) -> Result<Catalog, Problems> {
        let mut problems = Problems::new();
        let view_schema = config.views.schema.clone();
        if view_schema.is_empty() {
            problems.push(("views.schema".into(), "must not be empty".into()));
        } else if RESERVED_SCHEMAS.contains(&view_schema.as_str()) {
            problems.push((
                "views.schema".into(),
                format!("{view_schema} is reserved for redveil's own objects"),
            ));
        }
        let users = load_users(config, &mut problems);
        let names: BTreeSet<&str> = users.iter().map(|u| u.name.as_str()).collect();
        let mut data_sources = Vec::new();
        let mut views: HashMap<(Option<String>, String), String> = HashMap::new();
        for (i, ds) in config.data_sources.iter().enumerate() {
            let origin = format!("data_sources[{i}]");
            let Some(source) = load_data_source(ds, &origin, &names, &mut problems) else {
                continue;
            };
            let view_key = (source.table.database.clone(), source.view_name());
            if let Some(first) = views.insert(view_key, source.table.to_string()) {
                problems.push((
                    format!("{origin}.table"),
                    if first == source.table.to_string() {
                        format!("{} is registered twice", source.table)
                    } else {
                        format!(
                            "{} and {first} would share the view {}.{}",
                            source.table,
                            view_schema,
                            source.view_name()
                        )
                    },
                ));
            }
            data_sources.push(source);
        }
        if problems.is_empty() {
            Ok(Catalog {
                users,
                view_schema,
                data_sources,
            })
        } else {
            Err(problems)
        }
    }

    /// Whether `user` may query the data source named `data_source` (`schema.table`, as the
    /// rewriter reports it). Unknown users and unknown sources may not.
    pub fn subscribed(&self, user: &str, data_source: &str) -> bool {
        match (self.user(user), self.data_source(data_source)) {
            (Some(user), Some(source)) => source.subscription.admits(user),
            _ => false,
        }
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The data source whose table is `name` (`[database.]schema.table`, parsed like the
    /// config's `table`), or whose view is `name` (`<view schema>.<view>`).
    pub fn data_source(&self, name: &str) -> Option<&DataSource> {
        let parsed = sql::parse_table_name(name).ok();
        let table_is = |ds: &&DataSource, any_database: bool| {
            parsed.as_ref().is_some_and(|t| {
                t.schema == ds.table.schema
                    && t.table == ds.table.table
                    && (t.database == ds.table.database || any_database && t.database.is_none())
            })
        };
        // The exact name first: `hr.employees` is the source that names no database, even
        // when another database's `hr.employees` is listed before it.
        let sources = || self.data_sources.iter();
        sources()
            .find(|ds| table_is(ds, false))
            .or_else(|| sources().find(|ds| table_is(ds, true)))
            .or_else(|| {
                sources().find(|ds| name == format!("{}.{}", self.view_schema, ds.view_name()))
            })
    }
}

fn load_users(config: &Config, problems: &mut Problems) -> Vec<User> {
    let mut users = Vec::new();
    for (i, user) in config.users.iter().enumerate() {
        let at = |key: &str| format!("users[{i}].{key}");
        check_names(&user.groups, &at("groups"), problems);
        check_attributes(&user.attributes, &at("attributes"), problems);
        for permission in &user.permissions {
            if !PERMISSIONS.contains(&permission.as_str()) {
                problems.push((
                    at("permissions"),
                    format!(
                        "unknown permission {permission:?} (known: {})",
                        PERMISSIONS.join(", ")
                    ),
                ));
            }
        }
        users.push(User {
            name: user.name.clone(),
            groups: user.groups.iter().cloned().collect(),
            attributes: attribute_sets(&user.attributes),
            can_impersonate: user.permissions.iter().any(|p| p == "IMPERSONATE_USER"),
        });
    }
    users
}

fn load_data_source(
    ds: &DataSourceConfig,
    origin: &str,
    users: &BTreeSet<&str>,
    problems: &mut Problems,
) -> Option<DataSource> {
    let table = match sql::parse_table_name(&ds.table) {
        Ok(table) => Some(table),
        Err(message) => {
            problems.push((format!("{origin}.table"), message));
            None
        }
    };
    if ds.salt.as_deref() == Some("") {
        problems.push((format!("{origin}.salt"), "must not be empty".into()));
    }
    let subscription = match &ds.subscription {
        None => Subscription::Anyone,
        Some(sub) => load_subscription(sub, &format!("{origin}.subscription"), users, problems),
    };
    let mut masks = Vec::new();
    let mut masked = BTreeSet::new();
    for (j, mask) in ds.masks.iter().enumerate() {
        let at = format!("{origin}.masks[{j}]");
        if !masked.insert(mask.column.as_str()) {
            problems.push((
                format!("{at}.column"),
                format!("column {:?} is masked twice", mask.column),
            ));
        }
        if let Some(mask) = load_mask(mask, &at, problems) {
            masks.push(mask);
        }
    }
    let mut row_rules = Vec::new();
    for (j, rule) in ds.row_rules.iter().enumerate() {
        if let Some(rule) = load_row_rule(rule, &format!("{origin}.row_rules[{j}]"), problems) {
            row_rules.push(rule);
        }
    }
    Some(DataSource {
        origin: origin.to_string(),
        table: table?,
        description: ds.description.clone(),
        salt: ds.salt.clone(),
        subscription,
        masks,
        row_rules,
    })
}

fn load_subscription(
    sub: &SubscriptionConfig,
    at: &str,
    users: &BTreeSet<&str>,
    problems: &mut Problems,
) -> Subscription {
    for name in &sub.users {
        if !users.contains(name.as_str()) {
            problems.push((format!("{at}.users"), format!("unknown user {name:?}")));
        }
    }
    check_names(&sub.groups, &format!("{at}.groups"), problems);
    check_attributes(&sub.attributes, &format!("{at}.attributes"), problems);
    Subscription::AnyOf {
        users: sub.users.iter().cloned().collect(),
        groups: sub.groups.iter().cloned().collect(),
        attributes: attribute_sets(&sub.attributes),
    }
}

/// Which optional parameters each method takes; any other one present is an error, so a
/// misplaced parameter is never silently ignored.
fn parameters_of(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "null" => &[],
        "constant" => &["value"],
        "hash" => &["cast_to_text"],
        "regex" => &["pattern", "replacement"],
        "round" => &["step"],
        "truncate" => &["unit"],
        "randomized_response" => &["epsilon", "domain", "key"],
        _ => return None,
    })
}

fn load_mask(mask: &MaskConfig, at: &str, problems: &mut Problems) -> Option<Mask> {
    let before = problems.len();
    let mut bad = |key: &str, message: String| problems.push((format!("{at}.{key}"), message));
    if mask.column.is_empty() {
        bad("column", "must not be empty".into());
    }
    let Some(allowed) = parameters_of(&mask.method) else {
        bad(
            "method",
            format!(
                "unknown method {:?} (known: null, constant, hash, regex, round, truncate, randomized_response)",
                mask.method
            ),
        );
        return None;
    };
    let present = [
        ("value", mask.value.is_some()),
        ("pattern", mask.pattern.is_some()),
        ("replacement", mask.replacement.is_some()),
        ("step", mask.step.is_some()),
        ("unit", mask.unit.is_some()),
        ("epsilon", mask.epsilon.is_some()),
        ("domain", mask.domain.is_some()),
        ("key", mask.key.is_some()),
        ("cast_to_text", mask.cast_to_text.is_some()),
    ];
    for (name, is_present) in present {
        if is_present && !allowed.contains(&name) {
            bad(name, format!("does not apply to method {:?}", mask.method));
        }
    }
    let mut required = |name: &str, value: Option<String>| -> String {
        value.unwrap_or_else(|| {
            bad(name, format!("required by method {:?}", mask.method));
            String::new()
        })
    };
    let method = match mask.method.as_str() {
        "null" => MaskMethod::Null,
        "constant" => MaskMethod::Constant(required("value", mask.value.clone())),
        "hash" => MaskMethod::Hash {
            cast_to_text: mask.cast_to_text.unwrap_or(false),
        },
        "regex" => {
            let pattern = required("pattern", mask.pattern.clone());
            let replacement = required("replacement", mask.replacement.clone());
            if let Err(e) = regex::Regex::new(&pattern) {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or_default().trim().to_string();
                bad(
                    "pattern",
                    format!("invalid regular expression {pattern:?}: {last}"),
                );
            }
            MaskMethod::Regex {
                pattern,
                replacement,
            }
        }
        "round" => {
            let step = match mask.step {
                Some(NumberConfig::Integer(n)) if n > 0 => n.to_string(),
                Some(NumberConfig::Float(x)) if x > 0.0 && x.is_finite() => format!("{x:?}"),
                Some(_) => {
                    bad("step", "must be a positive number".into());
                    String::new()
                }
                None => required("step", None),
            };
            MaskMethod::Round { step }
        }
        "truncate" => {
            let unit = required("unit", mask.unit.clone());
            match TruncateUnit::ALL.iter().find(|u| u.as_str() == unit) {
                Some(unit) => MaskMethod::Truncate { unit: *unit },
                None => {
                    if !unit.is_empty() {
                        let known: Vec<_> = TruncateUnit::ALL.iter().map(|u| u.as_str()).collect();
                        bad(
                            "unit",
                            format!("unknown unit {unit:?} (known: {})", known.join(", ")),
                        );
                    }
                    MaskMethod::Truncate {
                        unit: TruncateUnit::Day,
                    }
                }
            }
        }
        "randomized_response" => load_randomized_response(mask, &mut bad),
        _ => unreachable!("parameters_of knows every method"),
    };
    check_names(
        &mask.unless_groups,
        &format!("{at}.unless_groups"),
        problems,
    );
    check_attributes(
        &mask.unless_attributes,
        &format!("{at}.unless_attributes"),
        problems,
    );
    (problems.len() == before).then(|| Mask {
        origin: at.to_string(),
        column: mask.column.clone(),
        method,
        unless: exceptions(&mask.unless_groups, &mask.unless_attributes),
    })
}

fn load_randomized_response(mask: &MaskConfig, bad: &mut impl FnMut(&str, String)) -> MaskMethod {
    let epsilon = match mask.epsilon {
        Some(e) if e > 0.0 && e.is_finite() => e,
        Some(_) => {
            bad("epsilon", "must be a positive, finite number".into());
            1.0
        }
        None => {
            bad(
                "epsilon",
                "required by method \"randomized_response\"".into(),
            );
            1.0
        }
    };
    let domain = mask.domain.clone().unwrap_or_default();
    let distinct: BTreeSet<&String> = domain.iter().collect();
    if mask.domain.is_none() {
        bad(
            "domain",
            "required by method \"randomized_response\"".into(),
        );
    } else if distinct.len() < 2 || distinct.len() != domain.len() {
        bad("domain", "must list at least two values, each once".into());
    } else if domain
        .iter()
        .any(|v| v.contains(super::masks::DOMAIN_SEPARATOR))
    {
        bad(
            "domain",
            "values must not contain the control character U+001F".into(),
        );
    } else if domain.len() > super::masks::MAX_DOMAIN {
        bad(
            "domain",
            format!("at most {} values", super::masks::MAX_DOMAIN),
        );
    }
    let key = mask.key.clone().unwrap_or_default();
    if mask.key.is_none() {
        bad("key", "required by method \"randomized_response\"".into());
    } else if key == mask.column {
        bad(
            "key",
            "must identify the row, not be the masked column itself".into(),
        );
    }
    MaskMethod::RandomizedResponse {
        epsilon,
        domain,
        key,
    }
}

fn load_row_rule(rule: &RowRuleConfig, at: &str, problems: &mut Problems) -> Option<RowRule> {
    let before = problems.len();
    let filter = match (&rule.column, &rule.attribute, &rule.predicate) {
        (Some(column), Some(attribute), None) => {
            if column.is_empty() {
                problems.push((format!("{at}.column"), "must not be empty".into()));
            }
            if attribute.is_empty() || attribute.contains(DELIMITERS) {
                problems.push((
                    format!("{at}.attribute"),
                    "must be a non-empty attribute name".into(),
                ));
            }
            RowFilter::AttributeMatch {
                column: column.clone(),
                attribute: attribute.clone(),
            }
        }
        (None, None, Some(predicate)) => {
            if let Err(message) = sql::check_predicate(predicate) {
                problems.push((format!("{at}.where"), message));
            }
            RowFilter::Predicate(predicate.clone())
        }
        _ => {
            problems.push((
                at.to_string(),
                "give either `column` and `attribute`, or `where`".into(),
            ));
            return None;
        }
    };
    if let Some(groups) = &rule.for_groups {
        if groups.is_empty() {
            problems.push((
                format!("{at}.for_groups"),
                "must name at least one group (omit it to restrict everyone)".into(),
            ));
        }
        check_names(groups, &format!("{at}.for_groups"), problems);
    }
    check_names(
        &rule.unless_groups,
        &format!("{at}.unless_groups"),
        problems,
    );
    check_attributes(
        &rule.unless_attributes,
        &format!("{at}.unless_attributes"),
        problems,
    );
    (problems.len() == before).then(|| RowRule {
        origin: at.to_string(),
        filter,
        for_groups: rule
            .for_groups
            .as_ref()
            .map(|g| g.iter().cloned().collect()),
        unless: exceptions(&rule.unless_groups, &rule.unless_attributes),
    })
}

fn exceptions(groups: &[String], attributes: &BTreeMap<String, Vec<String>>) -> Exceptions {
    Exceptions {
        groups: groups.iter().cloned().collect(),
        attributes: attribute_sets(attributes),
    }
}

fn attribute_sets(
    attributes: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
        .collect()
}

fn check_names(names: &[String], key: &str, problems: &mut Problems) {
    if names.iter().any(|n| n.is_empty()) {
        problems.push((key.to_string(), "names must not be empty".into()));
    }
}

/// Attribute keys and values end up in delimited lists (see compile.rs), so they may not
/// contain the delimiters.
fn check_attributes(
    attributes: &BTreeMap<String, Vec<String>>,
    key: &str,
    problems: &mut Problems,
) {
    for (name, values) in attributes {
        if name.is_empty() || name.contains(DELIMITERS) {
            problems.push((key.to_string(), format!("invalid attribute name {name:?}")));
        }
        if values.iter().any(|v| v.contains(DELIMITERS)) {
            problems.push((
                format!("{key}.{name}"),
                "values may not contain the control characters U+001E or U+001F".into(),
            ));
        }
    }
}
