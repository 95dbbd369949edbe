//! The bypass corpus's harness: attempts to reach raw data, hidden rows, the pinned identity or
//! another client's session through the proxy, each of which must fail closed (an error with a
//! SQLSTATE) or return only what the user may see. One test per family, each on one proxy with
//! a pool of one backend connection, so every user's statements share it and cross-user
//! effects show.
//!
//! "What the user may see" is checked against values computed as superuser: no raw ssn, full
//! name, e-mail or salary of any row, no hash of a row outside the user's rows, and, for every
//! user, no salt, no identity token (`immuta_system.session_tokens`, read when the step is
//! checked: each proxy issues its own), nothing another client planted (`PLANTED`) and no
//! actual row counts of a plan over the registered table, in any row, error message or
//! notice. After every attempt each user's own count is checked again, so an attempt that moved
//! an identity is caught even if its own output looked fine.

use super::demo_views::{eu_rows, sqlstate};
use super::proxy::TestProxy;
use super::raw::{self, RawConn};
use redveil::protocol::{frontend, tag};
use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::error::DbError;
use tokio_postgres::{Client, SimpleQueryMessage};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Analyst,
    Bi,
    Admin,
}
pub use Who::*;

impl Who {
    pub fn login(self) -> &'static str {
        match self {
            Analyst => "analyst",
            Bi => "bi_service",
            Admin => "admin",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Refused with 42501 (by the proxy or the cluster).
    Denied,
    /// Fails with some SQLSTATE (a missing object, a syntax error…).
    Fails,
    /// Fails with exactly this SQLSTATE.
    Code(&'static str),
    /// Either fails or returns only what the user may see.
    Safe,
    /// Must succeed (a setup step), and show only what the user may see.
    Works,
    /// Anything but a leak (cleanup).
    Any,
    /// Succeeds with the user's own row count as its only value.
    Own,
    /// Fails, or succeeds with one count no greater than the user's own (a session whose
    /// identity was voided sees nothing, never more).
    NoMore,
    /// Succeeds with exactly these values (joined by commas; booleans as `t`/`f` in the simple
    /// protocol, `true`/`false` in the extended one).
    Is(&'static str),
    /// Fails, or succeeds without showing any `immuta.*` setting or the pinned identity.
    Hidden,
}
pub use Expect::*;

/// How a step reaches the proxy.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Simple,
    /// Extended protocol (Parse/Bind/Execute) with these text parameters.
    Extended(&'static [&'static str]),
    /// `COPY … TO STDOUT`; each line is a value.
    CopyOut,
}

/// Which client of the user runs a step.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// The harness's long-lived client of that user.
    Main,
    /// A client of its own, logged in with these startup `options` (may be empty), that runs
    /// the step as one simple query over the raw protocol (every reply is seen, rows after an
    /// error included) and leaves.
    Fresh(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub who: Who,
    pub sql: &'static str,
    pub expect: Expect,
    pub mode: Mode,
    pub via: Via,
}

pub struct Attempt {
    pub name: &'static str,
    pub steps: Vec<Step>,
}

/// A step in the simple protocol.
pub fn s(who: Who, sql: &'static str, expect: Expect) -> Step {
    Step {
        who,
        sql,
        expect,
        mode: Mode::Simple,
        via: Via::Main,
    }
}

/// A step in the extended protocol.
pub fn x(who: Who, sql: &'static str, params: &'static [&'static str], expect: Expect) -> Step {
    Step {
        mode: Mode::Extended(params),
        ..s(who, sql, expect)
    }
}

/// A `COPY … TO STDOUT` step.
pub fn copy(who: Who, sql: &'static str, expect: Expect) -> Step {
    Step {
        mode: Mode::CopyOut,
        ..s(who, sql, expect)
    }
}

/// A step run by a new client of `who` that leaves right after (the next client of the
/// pooled connection).
pub fn fresh(who: Who, sql: &'static str, expect: Expect) -> Step {
    fresh_with(who, "", sql, expect)
}

/// As [`fresh`], the client logging in with startup `options` (e.g. `-c search_path=pg_temp`).
pub fn fresh_with(who: Who, options: &'static str, sql: &'static str, expect: Expect) -> Step {
    Step {
        via: Via::Fresh(options),
        ..s(who, sql, expect)
    }
}

/// A one-statement attempt by the analyst.
pub fn one(name: &'static str, sql: &'static str, expect: Expect) -> Attempt {
    Attempt {
        name,
        steps: vec![s(Analyst, sql, expect)],
    }
}

/// A one-statement attempt in both protocols (the statement alone, no parameters).
pub fn both(name: &'static str, sql: &'static str, expect: Expect) -> Attempt {
    Attempt {
        name,
        steps: vec![s(Analyst, sql, expect), x(Analyst, sql, &[], expect)],
    }
}

pub fn steps(name: &'static str, steps: Vec<Step>) -> Attempt {
    Attempt { name, steps }
}

impl From<Step> for Attempt {
    fn from(step: Step) -> Attempt {
        Attempt {
            name: step.sql,
            steps: vec![step],
        }
    }
}

/// Text built at run time, for steps (the corpus is `'static`; a test leaks a few kilobytes).
/// `SELECT` of setting `name`, or `''` when it is not set, as the cluster's engine spells it
/// (the second argument of `current_setting` is inverted on Redshift).
pub fn setting_or_empty(name: &str) -> &'static str {
    text(format!(
        "SELECT coalesce({}, '')",
        super::dialect().current_setting_or_null(name)
    ))
}

pub fn text(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Bind parameters built at run time.
pub fn params(values: Vec<&'static str>) -> &'static [&'static str] {
    Box::leak(values.into_boxed_slice())
}

/// What an attacker plants (a value in a setting, a temp object's rows): any step's output that
/// contains it shows one client's session state to another.
pub const PLANTED: &str = "planted-by-another-client";

/// Values no user but admin may ever see, computed as superuser.
pub struct Secrets {
    /// Raw ssn, full names, e-mails and salaries of every row, hashes of non-EU e-mails.
    pub analyst: HashSet<String>,
    /// Also the hashes of EU e-mails (bi_service sees no row at all).
    pub bi: HashSet<String>,
    pub salt: String,
    pattern: regex::Regex,
    /// A line of a plan with the actual row counts of a scan of the registered table.
    actual_scan: regex::Regex,
}

static SECRETS: OnceLock<Secrets> = OnceLock::new();

pub async fn secrets() -> &'static Secrets {
    if let Some(s) = SECRETS.get() {
        return s;
    }
    let su = super::cluster().connect_superuser("demo").await.unwrap();
    let salt: String = su
        .query_one(
            "SELECT salt FROM immuta_system.data_sources WHERE data_source = 'hr.employees'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rows = su
        .query(
            "SELECT ssn, name, email, salary::text, region,
                    encode(sha256(convert_to($1 || email, 'UTF8')), 'hex')
             FROM hr.employees",
            &[&salt],
        )
        .await
        .unwrap();
    let (mut analyst, mut eu_hashes) = (HashSet::new(), HashSet::new());
    for row in &rows {
        for i in 0..4 {
            analyst.insert(row.get::<_, String>(i));
        }
        let hash: String = row.get(5);
        if row.get::<_, String>(4) == "EU" {
            eu_hashes.insert(hash);
        } else {
            analyst.insert(hash);
        }
    }
    let mut bi = analyst.clone();
    bi.extend(eu_hashes);
    let pattern = regex::Regex::new(
        r"\d{3}-\d{2}-\d{4}|[a-z0-9._]+@example\.com|[A-Z][a-z]+ [A-Z][a-z]+|\d+\.\d{2}|[0-9a-f]{64}",
    )
    .unwrap();
    let actual_scan =
        regex::Regex::new(r"(?m)Scan\b[^\n]* on (hr\.)?employees\b[^\n]*\(actual ").unwrap();
    let _ = SECRETS.set(Secrets {
        analyst,
        bi,
        salt,
        pattern,
        actual_scan,
    });
    SECRETS.get().unwrap()
}

impl Secrets {
    /// The first secret in `text` that `who` may not see (data, the salt, planted state, a
    /// plan's actual counts); identity tokens are checked by `Harness::leak`.
    pub fn leak_in(&self, who: Who, text: &str) -> Option<String> {
        if text.contains(&self.salt) {
            return Some(format!("the salt {}", self.salt));
        }
        if text.contains(PLANTED) {
            return Some("state another client planted".into());
        }
        if let Some(line) = self.actual_scan.find(text) {
            return Some(format!(
                "the actual row counts of a scan of the registered table: {}",
                line.as_str()
            ));
        }
        let forbidden = match who {
            Admin => return None,
            Analyst => &self.analyst,
            Bi => &self.bi,
        };
        self.pattern
            .find_iter(text)
            .map(|m| m.as_str())
            .find(|t| forbidden.contains(*t))
            .map(str::to_string)
    }
}

pub struct User {
    pub who: Who,
    pub client: Client,
    pub notices: UnboundedReceiver<DbError>,
    pub own_count: i64,
}

/// One proxy (pool of one) and a client per demo user.
pub struct Harness {
    pub proxy: TestProxy,
    pub users: Vec<User>,
    pub secrets: &'static Secrets,
    pub eu: i64,
    pub failures: Vec<String>,
    pub attempts: usize,
    /// A superuser session on the cluster, to read the tokens and salts in force.
    su: Client,
}

pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a step returned: its values, its SQLSTATE if it failed, and everything it showed.
struct Outcome {
    values: Vec<String>,
    error: Option<String>,
    seen: Vec<String>,
    summary: String,
}

impl Harness {
    pub async fn new() -> Harness {
        Self::with_pool("[pool]\nsize = 1\n").await
    }

    pub async fn with_pool(pool: &str) -> Harness {
        let proxy = super::demo_views::start(pool).await;
        let eu = eu_rows().await;
        let secrets = secrets().await;
        let mut users = Vec::new();
        for (who, own_count) in [(Analyst, eu), (Bi, 0), (Admin, 10_000)] {
            let (client, notices) = proxy.connect_with_notices(who.login()).await;
            users.push(User {
                who,
                client,
                notices,
                own_count,
            });
        }
        let su = super::cluster().connect_superuser("demo").await.unwrap();
        let h = Harness {
            proxy,
            users,
            secrets,
            eu,
            failures: Vec::new(),
            attempts: 0,
            su,
        };
        h.sanity().await;
        h
    }

    /// The secret sets mean something: the analyst's legitimate rows contain none of them
    /// (so a hit is a leak, not noise), and admin's rows do.
    async fn sanity(&self) {
        let all = "SELECT * FROM hr.employees";
        let analyst = texts(self.user(Analyst).client.simple_query(all).await.unwrap());
        assert_eq!(analyst.len(), self.eu as usize * 8);
        let joined = analyst.join("\n");
        assert_eq!(self.secrets.leak_in(Analyst, &joined), None);
        assert!(self.secrets.leak_in(Bi, &joined).is_some(), "EU hashes");
        let admin = texts(self.user(Admin).client.simple_query(all).await.unwrap());
        assert!(self.secrets.leak_in(Analyst, &admin.join("\n")).is_some());
        assert!(!self.tokens().await.is_empty(), "the proxy pinned tokens");
    }

    pub fn user(&self, who: Who) -> &User {
        self.users.iter().find(|u| u.who == who).unwrap()
    }

    pub fn user_mut(&mut self, who: Who) -> &mut User {
        self.users.iter_mut().find(|u| u.who == who).unwrap()
    }

    /// Every identity token in the cluster and every salt (`Secrets::salt` is one of them).
    async fn tokens(&self) -> Vec<String> {
        self.su
            .query(
                "SELECT token FROM immuta_system.session_tokens
                 UNION SELECT salt FROM immuta_system.profile_access
                 UNION SELECT salt FROM immuta_system.data_sources",
                &[],
            )
            .await
            .expect("reading tokens as superuser")
            .iter()
            .map(|row| row.get::<_, String>(0))
            .filter(|t| t.len() >= 16)
            .collect()
    }

    /// The first thing in `text` that `who` may not see.
    pub async fn leak(&self, who: Who, text: &str) -> Option<String> {
        if let Some(leak) = self.secrets.leak_in(who, text) {
            return Some(leak);
        }
        if text.is_empty() {
            return None;
        }
        self.tokens()
            .await
            .into_iter()
            .find(|t| text.contains(t.as_str()))
            .map(|t| format!("the identity token or salt {t}"))
    }

    pub async fn run(&mut self, attempts: Vec<Attempt>) {
        for attempt in attempts {
            self.attempts += 1;
            for (i, step) in attempt.steps.iter().enumerate() {
                // Where the engine's rules refuse the step outright, that refusal is what must
                // hold, and the steps after it would use what it did not make.
                let refused_here = refused_by_the_engine(step.sql);
                let step = &Step {
                    expect: if refused_here { Denied } else { step.expect },
                    ..*step
                };
                if let Err(why) = self.step(step).await {
                    self.failures.push(format!(
                        "[{}] step {} ({:?}{}: {}): {why}",
                        attempt.name,
                        i + 1,
                        step.who,
                        match step.via {
                            Via::Main => "",
                            Via::Fresh(_) => ", a new client",
                        },
                        step.sql
                    ));
                    break;
                }
                if refused_here {
                    break;
                }
            }
            self.settle(attempt.name).await;
        }
    }

    async fn outcome(&mut self, step: &Step) -> Result<Outcome, String> {
        if let Via::Fresh(options) = step.via {
            return Ok(self.fresh_outcome(step, options).await);
        }
        let user = self.user(step.who);
        let client = &user.client;
        let hang = |_| "timed out (hang)".to_string();
        let result: Result<Vec<String>, tokio_postgres::Error> = match step.mode {
            Mode::Simple => tokio::time::timeout(STEP_TIMEOUT, client.simple_query(step.sql))
                .await
                .map_err(hang)?
                .map(texts),
            Mode::Extended(params) => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                tokio::time::timeout(STEP_TIMEOUT, client.query(step.sql, &params))
                    .await
                    .map_err(hang)?
                    .map(|rows| {
                        rows.iter()
                            .flat_map(|row| (0..row.len()).map(move |i| cell(row, i)))
                            .collect()
                    })
            }
            Mode::CopyOut => tokio::time::timeout(STEP_TIMEOUT, copy_out(client, step.sql))
                .await
                .map_err(hang)?,
        };
        let mut out = match result {
            Ok(values) => Outcome {
                seen: values.clone(),
                summary: format!("succeeded with {} values", values.len()),
                values,
                error: None,
            },
            Err(e) => Outcome {
                values: Vec::new(),
                seen: e.as_db_error().map(db_text).into_iter().collect(),
                summary: format!("failed with {} ({e})", sqlstate(&e)),
                error: Some(sqlstate(&e).to_string()),
            },
        };
        let user = self.user_mut(step.who);
        while let Ok(notice) = user.notices.try_recv() {
            out.seen.push(db_text(&notice));
        }
        Ok(out)
    }

    /// A new client runs the step over the raw protocol and leaves.
    async fn fresh_outcome(&self, step: &Step, options: &str) -> Outcome {
        let startup: Vec<(&str, &str)> = if options.is_empty() {
            Vec::new()
        } else {
            vec![("options", options)]
        };
        let mut conn = RawConn::proxy(&self.proxy, step.who.login(), &startup).await;
        let mut out = bytes::BytesMut::new();
        frontend::query(&mut out, step.sql);
        conn.send(&out).await;
        let mut replies = Vec::new();
        let read = tokio::time::timeout(STEP_TIMEOUT, async {
            while let Ok(Some(m)) = conn.recv().await {
                let done = m.tag == tag::READY_FOR_QUERY;
                replies.push(m);
                if done {
                    break;
                }
            }
        })
        .await;
        let mut terminate = bytes::BytesMut::new();
        frontend::put_message(&mut terminate, b'X', &[]);
        let _ = conn.try_send(&terminate).await;
        drop(conn);
        let mut outcome = Outcome {
            values: replies
                .iter()
                .filter(|m| m.tag == tag::DATA_ROW)
                .flat_map(|m| row_values(m.body()))
                .collect(),
            error: raw::error_codes(&replies).into_iter().next(),
            seen: replies
                .iter()
                .map(|m| String::from_utf8_lossy(m.body()).into_owned())
                .collect(),
            summary: String::new(),
        };
        if read.is_err() || replies.last().is_none_or(|m| m.tag != tag::READY_FOR_QUERY) {
            outcome.error.get_or_insert_with(|| "none".into());
            outcome.summary = "no ReadyForQuery (hang or closed); ".into();
        }
        outcome.summary += &match &outcome.error {
            Some(code) => format!("failed with {code}, {} values", outcome.values.len()),
            None => format!("succeeded with {} values", outcome.values.len()),
        };
        outcome
    }

    /// Runs one step; `Err` describes a broken expectation.
    pub async fn step(&mut self, step: &Step) -> Result<(), String> {
        let outcome = self.outcome(step).await?;
        let own = self.user(step.who).own_count;
        if let Some(leak) = self.leak(step.who, &outcome.seen.join("\n")).await {
            return Err(format!("LEAK of {leak:?}; {}", outcome.summary));
        }
        let values = &outcome.values;
        let ok = match (step.expect, outcome.error.as_deref()) {
            (Any, _) => true,
            (Denied, Some(code)) => code == "42501",
            (Code(want), Some(code)) => code == want,
            (Fails | Safe | Hidden | NoMore, Some(code)) => code != "none",
            (Own | Works | Is(_), Some(_)) | (Denied | Fails | Code(_), None) => false,
            (Safe | Works, None) => true,
            (Own, None) => values == &[own.to_string()],
            (Is(want), None) => values.join(",") == want,
            (NoMore, None) => {
                values.len() == 1
                    && values[0]
                        .parse::<i64>()
                        .is_ok_and(|n| (0..=own).contains(&n))
            }
            (Hidden, None) => !values.iter().any(|v| {
                let v = v.to_ascii_lowercase();
                v.contains("immuta") || v == "analyst" || v == "bi_service" || v == "admin"
            }),
        };
        if ok {
            Ok(())
        } else {
            let shown: Vec<&str> = values
                .iter()
                .take(5)
                .map(|v| &v[..v.len().min(80)])
                .collect();
            Err(format!(
                "expected {:?}, {} {shown:?}",
                step.expect, outcome.summary
            ))
        }
    }

    /// Ends any transaction the attempt left open (a failed step ends it early), and checks
    /// every user still sees exactly their own rows.
    pub async fn settle(&mut self, name: &str) {
        // Every open transaction first: with a pool of one, another user's holds the connection.
        for user in &self.users {
            let _ = tokio::time::timeout(STEP_TIMEOUT, user.client.simple_query("ROLLBACK")).await;
        }
        for who in [Analyst, Bi, Admin] {
            let user = self.user(who);
            let counted = tokio::time::timeout(
                STEP_TIMEOUT,
                user.client
                    .simple_query("SELECT count(*) FROM hr.employees"),
            )
            .await;
            let got = match counted {
                Err(_) => "a hang".to_string(),
                Ok(Err(e)) => format!("an error {e}"),
                Ok(Ok(messages)) => texts(messages).join(","),
            };
            if got != user.own_count.to_string() {
                self.failures.push(format!(
                    "[{name}] afterwards {who:?} counts {got}, expected {}",
                    user.own_count
                ));
            }
            let user = self.user_mut(who);
            while user.notices.try_recv().is_ok() {}
        }
    }

    pub fn finish(self, family: &str, at_least: usize) {
        eprintln!("{family}: {} attempts", self.attempts);
        assert!(
            self.attempts >= at_least,
            "{family}: {} attempts",
            self.attempts
        );
        assert!(
            self.failures.is_empty(),
            "{family}: {} of {} attempts broke:\n{}",
            self.failures.len(),
            self.attempts,
            self.failures.join("\n")
        );
    }
}

/// Whether the proxy refuses `sql` on the engine the suite runs against, whatever it is for:
/// on Redshift, functions defined by a client (its views have no security barrier) and
/// `EXPLAIN (options)`, which is not Redshift's grammar.
fn refused_by_the_engine(sql: &str) -> bool {
    if super::dialect() != redveil::dialect::Dialect::Redshift {
        return false;
    }
    redveil::rewrite::split_statements(sql)
        .iter()
        .any(|statement| {
            let words: Vec<String> = statement
                .split_whitespace()
                .take(4)
                .map(str::to_ascii_lowercase)
                .collect();
            let w: Vec<&str> = words.iter().map(String::as_str).collect();
            matches!(
                w.as_slice(),
                ["create", "function", ..] | ["create", "or", "replace", "function", ..]
            ) || statement.to_ascii_lowercase().starts_with("explain (")
        })
}

/// The lines a `COPY … TO STDOUT` sent.
async fn copy_out(client: &Client, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    use futures_util::StreamExt;
    let stream = client.copy_out(sql).await?;
    let chunks: Vec<_> = stream.collect().await;
    let mut text = String::new();
    for chunk in chunks {
        text.push_str(&String::from_utf8_lossy(&chunk?));
    }
    Ok(text.lines().map(str::to_string).collect())
}

/// The cells of a DataRow body as text (`NULL` for null).
fn row_values(body: &[u8]) -> Vec<String> {
    let count = i16::from_be_bytes([body[0], body[1]]).max(0) as usize;
    let mut at = 2;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        at += 4;
        if len < 0 {
            out.push("NULL".to_string());
        } else {
            let end = at + len as usize;
            out.push(String::from_utf8_lossy(&body[at..end]).into_owned());
            at = end;
        }
    }
    out
}

pub fn texts(messages: Vec<SimpleQueryMessage>) -> Vec<String> {
    let mut out = Vec::new();
    for m in messages {
        if let SimpleQueryMessage::Row(row) = m {
            for i in 0..row.len() {
                out.push(row.get(i).unwrap_or("NULL").to_string());
            }
        }
    }
    out
}

/// A cell of an extended-protocol row as text, whatever its type.
pub fn cell(row: &tokio_postgres::Row, i: usize) -> String {
    use tokio_postgres::types::Type;
    let t = row.columns()[i].type_();
    let text = if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::NAME {
        row.get::<_, Option<String>>(i)
    } else if *t == Type::INT8 {
        row.get::<_, Option<i64>>(i).map(|v| v.to_string())
    } else if *t == Type::INT4 {
        row.get::<_, Option<i32>>(i).map(|v| v.to_string())
    } else if *t == Type::BOOL {
        row.get::<_, Option<bool>>(i).map(|v| v.to_string())
    } else {
        // Other types are compared by their raw bytes' printable form.
        row.try_get::<_, Option<String>>(i)
            .ok()
            .flatten()
            .or_else(|| Some(format!("<{}>", t.name())))
    };
    text.unwrap_or_else(|| "NULL".into())
}

pub fn db_text(db: &DbError) -> String {
    [
        Some(db.message()),
        db.detail(),
        db.hint(),
        db.where_(),
        db.schema(),
        db.table(),
        db.column(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" | ")
}
