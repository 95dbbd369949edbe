use super::*;

const VERIFIER: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$9sYCQSgH4ZfW8lOc4ywrs9qmSCZYUp4WL96GVI8ceqs=:iNkdqSSlq2n2GcUMofq2ppGOGfvv9WzKTzxQdlySByo=";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

#[test]
fn empty_file_gets_defaults_but_needs_tls_files() {
    let err = parse("").unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["tls.cert", "tls.key"]);
}

#[test]
fn defaults_are_production_safe() {
    let config = parse("[tls]\nmode = \"disable\"\n").unwrap();
    assert_eq!(config.pool.mode, PoolMode::Transaction);
    assert_eq!(config.auth.method, AuthMethod::ScramSha256);
    assert!(!config.auth.allow_cleartext_without_tls);
    assert_eq!(Config::default().tls.mode, TlsMode::Require);
}

#[test]
fn unknown_key_names_key_and_line() {
    let err = parse("[tls]\nmode = \"disable\"\n\n[pool]\nsize = 2\nsise = 3\n").unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.line, Some(6));
    assert!(problem.message.contains("sise"), "{problem}");
}

#[test]
fn bad_enum_value_is_reported_with_line() {
    let err = parse("[tls]\nmode = \"sometimes\"\n").unwrap_err();
    assert_eq!(err.problems()[0].line, Some(2));
    assert!(err.problems()[0].message.contains("sometimes"));
}

#[test]
fn semantic_problems_are_all_reported_with_lines() {
    let text = format!(
        "[tls]\nmode = \"disable\"\n[pool]\nsize = 0\n[[users]]\nname = \"a\"\npassword = \"plain\"\n[[users]]\nname = \"a\"\npassword = \"{VERIFIER}\"\nmd5 = \"md5zz\"\n"
    );
    let err = parse(&text).unwrap_err();
    let got: Vec<_> = err
        .problems()
        .iter()
        .map(|p| (p.key.as_str(), p.line))
        .collect();
    assert_eq!(
        got,
        [
            ("pool.size", Some(4)),
            ("users[0].password", Some(7)),
            ("users[1].name", Some(9)),
            ("users[1].md5", Some(11)),
        ]
    );
}

#[test]
fn md5_for_redshift_drivers_needs_md5_verifiers() {
    let text = format!(
        "[tls]\nmode = \"disable\"\n[auth]\nredshift_driver_method = \"md5\"\n[[users]]\nname = \"a\"\npassword = \"{VERIFIER}\"\n"
    );
    let err = parse(&text).unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.key, "users[0].md5");
    assert!(
        problem.message.contains("auth.redshift_driver_method"),
        "{problem}"
    );
    let with_md5 = format!("{text}md5 = \"md5{}\"\n", "0".repeat(32));
    assert!(parse(&with_md5).is_ok());
}

#[test]
fn valid_user_is_accepted() {
    let text = format!("[tls]\nmode = \"disable\"\n[[users]]\nname = \"a\"\npassword = \"{VERIFIER}\"\ngroups = [\"hr\"]\n[users.attributes]\nregion = [\"EU\"]\n");
    let config = parse(&text).unwrap();
    let user = config.user("a").unwrap();
    assert_eq!(user.attributes["region"], ["EU"]);
}

#[test]
fn metrics_listen_is_optional_and_checked() {
    let config = parse("[tls]\nmode = \"disable\"\n").unwrap();
    assert_eq!(config.metrics.listen_addr(), None);
    let config =
        parse("[tls]\nmode = \"disable\"\n[metrics]\nlisten = \"127.0.0.1:9187\"\n").unwrap();
    assert_eq!(
        config.metrics.listen_addr(),
        Some("127.0.0.1:9187".parse().unwrap())
    );
    for bad in ["localhost:9187", "127.0.0.1", "127.0.0.1:0"] {
        let text = format!("[tls]\nmode = \"disable\"\n\n[metrics]\nlisten = \"{bad}\"\n");
        let err = parse(&text).unwrap_err();
        let problem = &err.problems()[0];
        assert_eq!(
            (problem.key.as_str(), problem.line),
            ("metrics.listen", Some(5)),
            "{problem}"
        );
    }
    let err = parse("[tls]\nmode = \"disable\"\n[metrics]\nport = 9187\n").unwrap_err();
    assert!(err.problems()[0].message.contains("port"), "{err}");
}

#[test]
fn reuse_never_is_for_session_mode_only() {
    let err = parse("[tls]\nmode = \"disable\"\n[pool]\nreuse = \"never\"\n").unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(
        (problem.key.as_str(), problem.line),
        ("pool.reuse", Some(4))
    );
    assert!(
        problem.message.contains("pool.mode = \"session\""),
        "{problem}"
    );
    let config =
        parse("[tls]\nmode = \"disable\"\n[pool]\nmode = \"session\"\nreuse = \"never\"\n")
            .unwrap();
    assert_eq!(config.pool.reuse, PoolReuse::Never);
}
