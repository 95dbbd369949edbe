use super::*;
use SessionCommand::*;

fn set(name: &str, value: &str) -> Option<SessionCommand> {
    Some(Set {
        name: name.into(),
        value: value.into(),
    })
}

#[test]
fn set_forms() {
    assert_eq!(
        classify("SET search_path TO a, \"B\""),
        set("search_path", "a, \"B\"")
    );
    assert_eq!(
        classify("set SESSION DateStyle = 'ISO'"),
        set("datestyle", "'ISO'")
    );
    assert_eq!(classify("SET TIME ZONE 'UTC'"), set("timezone", "'UTC'"));
    assert_eq!(classify("SET my.Custom = 5"), set("my.custom", "5"));
    for sql in [
        "SET statement_timeout TO DEFAULT",
        "set Statement_Timeout = default",
        "SET SESSION statement_timeout TO DEFAULT -- back",
    ] {
        assert_eq!(
            classify(sql),
            Some(SetDefault {
                name: "statement_timeout".into()
            }),
            "{sql}"
        );
    }
    assert_eq!(
        classify("SET search_path TO default_schema"),
        set("search_path", "default_schema")
    );
    assert_eq!(
        classify("SET LOCAL work_mem TO DEFAULT"),
        Some(Untracked { tag: "SET" })
    );
    assert_eq!(
        classify("SET LOCAL work_mem = '1MB'"),
        Some(Untracked { tag: "SET" })
    );
    assert_eq!(
        classify("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        Some(Untracked { tag: "SET" })
    );
    assert_eq!(classify("set role bob"), set("role", "bob"));
}

#[test]
fn two_word_names_reset_as_they_are_set() {
    let reset = |name: &str| Some(Reset { name: name.into() });
    assert_eq!(classify("RESET TIME ZONE"), reset("timezone"));
    assert_eq!(
        classify("reset session authorization"),
        reset("session_authorization")
    );
    assert_eq!(classify("RESET timezone"), reset("timezone"));
    assert_eq!(classify("RESET ROLE"), reset("role"));
}

#[test]
fn session_characteristics() {
    let characteristics = |pairs: &[(&str, &str)]| {
        Some(Characteristics(
            pairs
                .iter()
                .map(|(k, v)| (format!("default_transaction_{k}"), format!("'{v}'")))
                .collect(),
        ))
    };
    assert_eq!(
        classify("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        characteristics(&[("isolation", "serializable")])
    );
    assert_eq!(
        classify(
            "set session characteristics as transaction read only, isolation level \
             repeatable read not deferrable"
        ),
        characteristics(&[
            ("read_only", "on"),
            ("isolation", "repeatable read"),
            ("deferrable", "off")
        ])
    );
    assert_eq!(
        classify("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE, /* x */ DEFERRABLE, ISOLATION LEVEL READ UNCOMMITTED"),
        characteristics(&[
            ("read_only", "off"),
            ("deferrable", "on"),
            ("isolation", "read uncommitted")
        ])
    );
    assert_eq!(
        classify("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"),
        characteristics(&[("isolation", "read committed")])
    );
    for sql in [
        "SET SESSION CHARACTERISTICS AS TRANSACTION",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL CHAOS",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY 'x'",
        "SET SESSION CHARACTERISTICS TRANSACTION READ ONLY",
    ] {
        assert_eq!(classify(sql), Some(Untracked { tag: "SET" }), "{sql}");
    }
    assert_eq!(
        Characteristics(Vec::new()).tag(),
        "SET",
        "answered as SET, like SET x TO DEFAULT"
    );
    assert!(SetDefault { name: "x".into() }.completes_with("SET"));
}

#[test]
fn a_whole_statement_of_set_config_is_tracked_raw() {
    let raw = |name: &str, value: &str| {
        Some(SessionCommand::SetRaw {
            name: name.into(),
            value: value.into(),
        })
    };
    assert_eq!(
        classify("SELECT pg_catalog.set_config('search_path', '', false);"),
        raw("search_path", "")
    );
    assert_eq!(
        classify("select SET_CONFIG('Work_Mem', 'it''s', FALSE)"),
        raw("work_mem", "it's")
    );
    for other in [
        "SELECT set_config('search_path', 'hr', true)",
        "SELECT set_config('search_path', 'hr', false), 1",
        "SELECT set_config('search_path', 'a\\b', false)",
        "SELECT set_config('search_path', $1, false)",
        "SELECT other.set_config('search_path', 'hr', false)",
        "SELECT set_config('search_path', 'hr', false) FROM t",
        "SELECT set_config('",
        "SELECT set_config('x', 'é",
        "SELECT 1",
    ] {
        assert_eq!(classify(other), None, "{other}");
    }
}

#[test]
fn other_commands() {
    assert_eq!(classify("RESET ALL"), Some(ResetAll));
    assert_eq!(
        classify("reset Work_Mem"),
        Some(Reset {
            name: "work_mem".into()
        })
    );
    assert_eq!(
        classify("PREPARE Q1 (int) AS select $1"),
        Some(Prepare {
            name: "q1".into(),
            sql: "PREPARE Q1 (int) AS select $1".into()
        })
    );
    assert_eq!(
        classify("DEALLOCATE PREPARE \"Q\""),
        Some(Deallocate { name: "Q".into() })
    );
    assert_eq!(classify("deallocate all"), Some(DeallocateAll));
    assert_eq!(classify("DISCARD ALL"), Some(DiscardAll));
    assert_eq!(classify("select 1"), None);
    assert_eq!(classify("-- SET x = 1\nselect 1"), None);
}

#[test]
fn transaction_commands() {
    let tx = |c| Some(Transaction(c));
    use TransactionCommand::*;
    for sql in [
        "COMMIT",
        "commit work",
        "END TRANSACTION",
        "COMMIT AND CHAIN",
    ] {
        assert_eq!(classify(sql), tx(Commit), "{sql}");
    }
    for sql in ["ROLLBACK", "abort", "ROLLBACK WORK AND NO CHAIN"] {
        assert_eq!(classify(sql), tx(Rollback), "{sql}");
    }
    assert_eq!(classify("COMMIT PREPARED 'x'"), None);
    assert_eq!(classify("ROLLBACK PREPARED 'x'"), None);
    for sql in [
        "ROLLBACK TO SAVEPOINT A",
        "rollback to a",
        "ROLLBACK TRANSACTION TO SAVEPOINT a",
        "ROLLBACK WORK TO /* x */ a",
        "ROLLBACK TO \"a\"",
    ] {
        assert_eq!(classify(sql), tx(RollbackTo("a".into())), "{sql}");
    }
    assert_eq!(
        classify("ROLLBACK TO savepoint"),
        tx(RollbackTo("savepoint".into()))
    );
    assert_eq!(classify("SAVEPOINT \"A\""), tx(Savepoint("A".into())));
    assert_eq!(classify("savepoint Sp_1"), tx(Savepoint("sp_1".into())));
    assert_eq!(classify("RELEASE SAVEPOINT B"), tx(Release("b".into())));
    assert_eq!(classify("release b"), tx(Release("b".into())));
    assert_eq!(
        classify("RELEASE savepoint"),
        tx(Release("savepoint".into()))
    );
    assert_eq!(
        classify(&format!("SAVEPOINT {}", "x".repeat(70))),
        tx(Savepoint("x".repeat(63)))
    );
    assert_eq!(classify("SAVEPOINT"), None);
    assert_eq!(classify("ROLLBACK TO"), None);
    let failed_commit = Transaction(Commit);
    assert!(failed_commit.completes_with("COMMIT") && failed_commit.completes_with("ROLLBACK"));
    assert!(!Transaction(Release("b".into())).completes_with("ROLLBACK"));
    assert_eq!(Transaction(RollbackTo("a".into())).tag(), "ROLLBACK");
}
