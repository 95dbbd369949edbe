//! The catalog as written in proxy.toml: users, the view schema and data sources. The policy
//! module turns these into its validated model; this file only fixes their TOML shape.

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

/// `[[data_sources]]`: a registered table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSourceConfig {
    /// `[database.]schema.table`.
    pub table: String,
    /// Free text shown by explain-policy.
    #[serde(default)]
    pub description: Option<String>,
}
