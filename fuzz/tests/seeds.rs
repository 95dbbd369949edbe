//! Writes the seed corpora under `fuzz/seeds/<target>/` from the test suites: every string
//! literal of the bypass corpora and the rewrite tests (SQL for the splitter and rewriter,
//! wrapped in protocol messages for the decoder), and protocol exchanges built with the
//! proxy's own encoders. Run after the suites change:
//!
//!     cd fuzz && cargo test --test seeds -- --ignored

use bytes::{BufMut, BytesMut};
use redveil::protocol::backend::{self as msg, Severity};
use redveil::protocol::frontend;
use redveil::protocol::startup::{self, StartupMessage};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Test files whose string literals are SQL (and some names, harmless as seeds).
const SQL_SOURCES: [&str; 5] = [
    "tests/bypass.rs",
    "tests/bypass_last_line.rs",
    "tests/bypass_pooled_state.rs",
    "src/rewrite",
    "tests/enforcement.rs",
];

#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sql = sql_strings(&root.join(".."));
    assert!(sql.len() > 500, "only {} SQL strings found", sql.len());
    let seeds = root.join("seeds");
    let _ = std::fs::remove_dir_all(&seeds);
    write(
        &seeds.join("splitter"),
        sql.iter().map(|s| s.as_bytes().to_vec()),
    );
    write(
        &seeds.join("rewriter"),
        sql.iter().flat_map(|s| rewriter_inputs(s)),
    );
    write(&seeds.join("decoder"), decoder_inputs(&sql));
    write(&seeds.join("startup"), startup_inputs());
}

fn rewriter_inputs(sql: &str) -> Vec<Vec<u8>> {
    let mut out = vec![[&[0u8][..], sql.as_bytes()].concat()];
    // Unqualified names resolve into hr under search path 1.
    if sql.contains("employees") && !sql.contains("hr.") {
        out.push([&[1u8][..], sql.as_bytes()].concat());
    }
    out
}

/// Client streams (mode 0: client, 16 kB limit) and backend streams (mode 1), all at once
/// (read size 0) or in reads of 7 bytes.
fn decoder_inputs(sql: &BTreeSet<String>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let framed = |mode: u8, read: u8, stream: &BytesMut| [&[mode, read][..], stream].concat();
    for (i, text) in sql.iter().enumerate().filter(|(i, _)| i % 4 == 0) {
        let mut stream = BytesMut::new();
        if i % 8 == 0 {
            frontend::query(&mut stream, text);
        } else {
            frontend::parse_bind_execute(&mut stream, "s1", text, &["42", "x"]);
            frontend::describe_statement(&mut stream, "s1");
            frontend::close_statement(&mut stream, "s1");
            frontend::sync(&mut stream);
        }
        out.push(framed(0, 0, &stream));
    }
    let mut login = BytesMut::new();
    frontend::encode_sasl_initial(&mut login, "SCRAM-SHA-256", b"n,,n=,r=rOprNGfwEbeRWgbNEkqO");
    frontend::encode_password(&mut login, b"md5f4f0e23a4c2b8d9b4a4c3d2e1f0a9b8c");
    frontend::flush(&mut login);
    frontend::close_portal(&mut login, "");
    let mut copy = BytesMut::new();
    frontend::put_message(&mut copy, b'd', b"1\tann\n");
    frontend::put_message(&mut copy, b'c', b"");
    frontend::put_message(&mut copy, b'X', b"");
    // A Bind and a CopyData that declare more than they carry: the scanner streams them.
    let mut streamed = BytesMut::new();
    streamed.put_u8(b'B');
    streamed.put_i32(300_000);
    streamed.put_slice(b"p\0s1\0\0\x01\0\x02\0\0\0\x05hello");
    let mut backend = BytesMut::new();
    msg::auth_sasl(&mut backend, &["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    msg::auth_sasl_continue(&mut backend, b"r=abc,s=c2FsdA==,i=4096");
    msg::auth_sasl_final(&mut backend, b"v=xyz");
    msg::auth_md5(&mut backend, [1, 2, 3, 4]);
    msg::auth_ok(&mut backend);
    msg::parameter_status(&mut backend, "server_version", "16.4");
    msg::backend_key_data(&mut backend, 1234, 5678);
    msg::ready_for_query(&mut backend, b'I');
    msg::row_description_text(&mut backend, &["ssn", "name"], 0);
    msg::data_row_text(&mut backend, &[Some("123"), None]);
    msg::command_complete(&mut backend, "SELECT 1");
    msg::error(
        &mut backend,
        Severity::Fatal,
        "28P01",
        "password authentication failed",
    );
    msg::notice(&mut backend, "01000", "a notice");
    msg::parameter_description(&mut backend, &[25, 23]);
    msg::negotiate_protocol_version(&mut backend, vec!["_pq_.x".into()]);
    msg::parse_complete(&mut backend);
    msg::bind_complete(&mut backend);
    msg::no_data(&mut backend);
    msg::close_complete(&mut backend);
    for stream in [&login, &copy, &streamed] {
        out.push(framed(0, 0, stream));
        out.push(framed(0, 7, stream));
        out.push(framed(2, 0, stream));
    }
    out.push(framed(1, 0, &backend));
    out.push(framed(1, 7, &backend));
    out
}

/// Mode byte (TLS mode, TLS configured, method; see `redveil_fuzz::startup`), then what a
/// client sends.
fn startup_inputs() -> Vec<Vec<u8>> {
    let startup = |params: &[(&str, &str)]| {
        StartupMessage::encode(
            &params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    let plain = startup(&[("user", "alice"), ("database", "demo")]);
    let options = startup(&[
        ("user", "bi_service"),
        (
            "options",
            "-c search_path=hr --statement-timeout=5 -c immuta.immuta_user=analyst",
        ),
        ("application_name", "psql"),
        ("_pq_.compression", "on"),
    ]);
    let redshift = startup(&[
        ("user", "alice"),
        ("client_protocol_version", "2"),
        ("driver_version", "2.1.0.30"),
        ("client_encoding", "utf8"),
    ]);
    let reserved = startup(&[("user", "alice"), ("immuta.user", "admin")]);
    let mut gss = BytesMut::new();
    gss.put_i32(8);
    gss.put_i32(80_877_104);
    let ssl = startup::encode_ssl_request();
    let cancel = startup::encode_cancel(42, 4242);
    let mut scram = BytesMut::new();
    frontend::encode_sasl_initial(&mut scram, "SCRAM-SHA-256", b"n,,n=,r=rOprNGfwEbeRWgbNEkqO");
    frontend::encode_password(
        &mut scram,
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    let mut plus = BytesMut::new();
    frontend::encode_sasl_initial(
        &mut plus,
        "SCRAM-SHA-256-PLUS",
        b"p=tls-server-end-point,,n=,r=abc",
    );
    let mut password = BytesMut::new();
    frontend::encode_password(&mut password, b"secret");
    let mut out = Vec::new();
    for (mode, parts) in [
        (1u8, vec![&plain[..], &scram[..]]),
        (0, vec![&ssl[..], &plain[..], &scram[..]]),
        (0, vec![&ssl[..], &options[..], &plus[..]]),
        (8, vec![&ssl[..], &redshift[..], &password[..]]),
        (16, vec![&ssl[..], &plain[..], &password[..]]),
        (2, vec![&gss[..], &ssl[..], &plain[..], &password[..]]),
        (1, vec![&gss[..], &reserved[..]]),
        (0, vec![&ssl[..], &ssl[..], &plain[..]]),
        (4, vec![&ssl[..], &plain[..]]),
        (0, vec![&cancel[..]]),
    ] {
        out.push([&[mode][..], &parts.concat()].concat());
    }
    out
}

/// Every string literal of the Rust files under `SQL_SOURCES`.
fn sql_strings(repo: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    for source in SQL_SOURCES {
        collect_rs(&repo.join(source), &mut files);
    }
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let tokens: proc_macro2::TokenStream = text.parse().unwrap();
        literals(tokens, &mut out);
    }
    out.retain(|s| s.len() >= 3 && s.len() <= 4096 && s.chars().any(|c| c.is_ascii_alphabetic()));
    out
}

fn collect_rs(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            collect_rs(&entry, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

fn literals(tokens: proc_macro2::TokenStream, out: &mut BTreeSet<String>) {
    for tree in tokens {
        match tree {
            proc_macro2::TokenTree::Group(group) => literals(group.stream(), out),
            proc_macro2::TokenTree::Literal(literal) => {
                if let Ok(s) = syn::parse_str::<syn::LitStr>(&literal.to_string()) {
                    out.insert(s.value());
                }
            }
            _ => {}
        }
    }
}

/// One file per input, named by a hash of its content so regenerating changes only what
/// changed.
fn write(dir: &Path, inputs: impl IntoIterator<Item = Vec<u8>>) {
    std::fs::create_dir_all(dir).unwrap();
    for input in inputs {
        let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        std::fs::write(dir.join(format!("{hash:016x}")), input).unwrap();
    }
}
