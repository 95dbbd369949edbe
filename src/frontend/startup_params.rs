//! Which startup parameters become session settings, which are the proxy's alone (Redshift
//! driver parameters, protocol options), and the ParameterStatus set a client is told.

use crate::protocol::startup::StartupMessage;

/// Sent by Amazon's Redshift drivers; PostgreSQL rejects them, so they never reach it.
const REDSHIFT_DRIVER_PARAMS: &[&str] = &[
    "client_protocol_version",
    "driver_version",
    "os_version",
    "plugin_name",
    "driver_discovery_version",
    "idp_type",
    "provider_name",
    "token_type",
    "identity_namespace",
    "idc_client_display_name",
    "idc_region",
    "idp_response_timeout",
    "listen_port",
    "login_to_rp",
    "compression",
];

/// The proxy's own, or handled at login.
const LOGIN_PARAMS: &[&str] = &["user", "database", "replication", "options"];

/// Parameters PostgreSQL reports with ParameterStatus, in the order it sends them.
const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "default_transaction_read_only",
    "in_hot_standby",
    "integer_datetimes",
    "IntervalStyle",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
    "TimeZone",
];

/// A client's startup parameters, sorted by fate.
#[derive(Debug, Default)]
pub struct StartupParams {
    /// To apply on backend connections as session settings.
    pub settings: Vec<(String, String)>,
    /// The client is one of Amazon's Redshift drivers.
    pub redshift_driver: bool,
    pub client_protocol_version: Option<String>,
    /// `_pq_.` options the proxy does not support (answered with NegotiateProtocolVersion).
    pub unsupported_protocol_options: Vec<String>,
}

pub fn split(startup: &StartupMessage) -> StartupParams {
    let mut out = StartupParams::default();
    for (name, value) in &startup.params {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("_pq_.") {
            out.unsupported_protocol_options.push(name.clone());
        } else if REDSHIFT_DRIVER_PARAMS.contains(&lower.as_str()) {
            out.redshift_driver = true;
            if lower == "client_protocol_version" {
                out.client_protocol_version = Some(value.clone());
            }
        } else if lower == "options" {
            out.settings.extend(parse_options(value));
        } else if !LOGIN_PARAMS.contains(&lower.as_str()) {
            out.settings.push((name.clone(), value.clone()));
        }
    }
    out
}

/// `-c name=value` and `--name=value` pairs from the `options` startup parameter.
fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in options.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let mut out = Vec::new();
    let mut iter = words.into_iter();
    while let Some(word) = iter.next() {
        let pair = if word == "-c" {
            iter.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            word.strip_prefix("-c").map(str::to_string)
        };
        if let Some((name, value)) = pair.as_deref().and_then(|p| p.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
    }
    out
}

/// The ParameterStatus values a client is told at startup: the cluster's, overridden by the
/// client's settings as the cluster shows them (`shown`). `server_version` is the configured
/// one, else the cluster's; cut to `major.minor` only for Amazon's Redshift drivers, whose
/// version parsers reject Debian-style suffixes.
pub fn reported(
    template: &[(String, String)],
    shown: &[(String, String)],
    redshift_driver: bool,
    redshift_protocol: bool,
    server_version: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in REPORTED {
        let from_client = shown
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone());
        let from_backend = template
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone());
        let value = match *name {
            "server_version" => server_version.map(str::to_string).or_else(|| {
                from_backend.map(|v| match redshift_driver {
                    true => clean_version(&v),
                    false => v,
                })
            }),
            _ => from_client.or(from_backend),
        };
        if let Some(value) = value {
            out.push((name.to_string(), value));
        }
    }
    if redshift_protocol {
        // Plain PostgreSQL layouts: drivers must not expect Redshift's extended metadata.
        out.push(("server_protocol_version".into(), "0".into()));
    }
    out
}

/// `15.18 (Debian 15.18-0+deb12u1)` → `15.18`.
fn clean_version(version: &str) -> String {
    version
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .filter(|v| !v.is_empty())
        .unwrap_or(version)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(params: &[(&str, &str)]) -> StartupMessage {
        StartupMessage {
            major: 3,
            minor: 0,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn redshift_parameters_stay_in_the_proxy() {
        let p = split(&startup(&[
            ("user", "u"),
            ("client_protocol_version", "2"),
            ("driver_version", "2.2"),
            ("application_name", "bi"),
            ("options", "-c search_path=hr --statement-timeout=5"),
            ("_pq_.compression", "on"),
        ]));
        assert!(p.redshift_driver);
        assert_eq!(
            p.settings,
            [
                ("application_name".to_string(), "bi".to_string()),
                ("search_path".into(), "hr".into()),
                ("statement_timeout".into(), "5".into())
            ]
        );
        assert_eq!(p.unsupported_protocol_options, ["_pq_.compression"]);
    }

    #[test]
    fn reported_values() {
        let template = vec![
            (
                "server_version".to_string(),
                "15.18 (Debian 15.18-0+deb12u1)".to_string(),
            ),
            ("TimeZone".into(), "Etc/UTC".into()),
            ("client_encoding".into(), "SQL_ASCII".into()),
        ];
        let shown = [("client_encoding".to_string(), "UTF8".to_string())];
        let got = reported(&template, &shown, true, true, None);
        assert!(got.contains(&("server_version".into(), "15.18".into())));
        assert!(got.contains(&("client_encoding".into(), "UTF8".into())));
        assert!(got.contains(&("TimeZone".into(), "Etc/UTC".into())));
        assert!(got.contains(&("server_protocol_version".into(), "0".into())));
        assert_eq!(clean_version("8.0.2"), "8.0.2");
        // Any other client is told the server's version as the server says it.
        let got = reported(&template, &shown, false, false, None);
        assert!(got.contains(&(
            "server_version".into(),
            "15.18 (Debian 15.18-0+deb12u1)".into()
        )));
        assert!(!got.iter().any(|(k, _)| k == "server_protocol_version"));
    }
}
