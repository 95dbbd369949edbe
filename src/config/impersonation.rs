//! `[impersonation]`: who may act as another user.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImpersonationConfig {
    /// Members of this group may impersonate, besides users with `IMPERSONATE_USER`.
    pub group: Option<String>,
    /// When set, only these users may impersonate, whatever their permissions.
    pub allowed_impersonators: Option<Vec<String>>,
    /// Once a session impersonates someone, it can neither switch to another user nor end it.
    pub single_user_per_session: bool,
}
