//! Impersonation statements, answered by the proxy in both protocols. The cluster never sees
//! them; what it sees is the identity pin that follows.

use super::{ClientConnection, RelayError};
use crate::intercept::{self, Intercept, Target, SHOW_COLUMNS};
use crate::protocol::backend as msg;
use crate::protocol::frontend::{self, BindHead, BindValues, Parse};
use crate::protocol::tag;
use crate::rewrite::{classify, split_statements, SessionCommand};
use crate::session::{Expect, Substitution};
use bytes::{Bytes, BytesMut};

/// A failed transaction refuses everything but its end, as PostgreSQL does.
const IN_FAILED_TRANSACTION: u8 = b'E';
const ABORTED: &str =
    "current transaction is aborted, commands ignored until end of transaction block";

impl ClientConnection {
    /// Answers a simple query made of or containing impersonation statements. Returns false
    /// when the text has none.
    pub(super) async fn intercept_query(
        &mut self,
        statements: &[&str],
    ) -> Result<bool, RelayError> {
        let intercepts: Vec<Option<Intercept>> =
            statements.iter().map(|s| intercept::classify(s)).collect();
        if intercepts.iter().all(Option::is_none) {
            return Ok(false);
        }
        // A string that starts by ending the failed transaction or rolling back to a
        // savepoint runs on: the backend refuses what it must.
        if self.session.tx_status == IN_FAILED_TRANSACTION && intercepts[0].is_some() {
            self.refuse_with("25P02", ABORTED, tag::QUERY);
            return Ok(true);
        }
        if let [Some(only)] = intercepts.as_slice() {
            self.answer_alone(only.clone());
            return Ok(true);
        }
        self.substitute_in_query(statements, &intercepts).await;
        Ok(true)
    }

    /// A lone impersonation statement: answered without the cluster.
    fn answer_alone(&mut self, intercept: Intercept) {
        let mut reply = BytesMut::new();
        match &intercept {
            Intercept::Show => {
                msg::row_description_text(&mut reply, &SHOW_COLUMNS, 0);
                self.show_row(&mut reply, self.session.impersonation.current());
            }
            Intercept::Impersonate { target, .. } => {
                let target = match target {
                    Target::User(user) => Some(user.clone()),
                    Target::Nobody => None,
                    Target::Parameter(_) => {
                        self.refuse_with(
                            "08P01",
                            "there is no parameter $1 in a simple query",
                            tag::QUERY,
                        );
                        return;
                    }
                };
                if let Err(refusal) = self.impersonate(target) {
                    self.refuse_with(refusal.code, &refusal.message, tag::QUERY);
                    return;
                }
            }
        }
        msg::command_complete(&mut reply, intercept.tag());
        self.push_answer(&intercept, reply, true);
    }

    /// Impersonation inside a multi-statement string: each such statement becomes an identity
    /// pin at its place in the string, so the statements after it run as the new user within
    /// the same implicit transaction, and its reply is the proxy's own.
    async fn substitute_in_query(&mut self, statements: &[&str], intercepts: &[Option<Intercept>]) {
        let mut substitutions = std::collections::VecDeque::new();
        let mut texts = Vec::with_capacity(statements.len());
        let saved = self.session.impersonation.clone();
        // The identity through the string, which follows its own transaction and savepoint
        // commands: a ROLLBACK TO in it undoes the pins made after the savepoint.
        let mut predicted = saved.predicted();
        // One version for every pin of the string and the record of what was pinned.
        let policy = self.settings.policy.current();
        // The effective user each statement runs under: it reads that user's class views.
        let mut users = Vec::with_capacity(statements.len());
        // The effective user after each impersonation of the string, in order.
        let mut switches = Vec::new();
        for (index, (statement, intercept)) in statements.iter().zip(intercepts).enumerate() {
            users.push(
                predicted
                    .current()
                    .unwrap_or(&self.session.login)
                    .to_string(),
            );
            let Some(intercept) = intercept else {
                if let Some(SessionCommand::Transaction(command)) = classify(statement) {
                    predicted.transaction(&command);
                }
                texts.push(statement.to_string());
                continue;
            };
            let mut reply = BytesMut::new();
            match intercept {
                Intercept::Show => {
                    msg::row_description_text(&mut reply, &SHOW_COLUMNS, 0);
                    self.show_row(&mut reply, predicted.current());
                    texts.push("SELECT 1".to_string());
                }
                Intercept::Impersonate { target, .. } => {
                    let target = match target {
                        Target::User(user) => Some(user.clone()),
                        _ => None,
                    };
                    if let Err(refusal) = self.impersonate(target.clone()) {
                        self.session.impersonation = saved;
                        self.refuse_with(refusal.code, &refusal.message, tag::QUERY);
                        return;
                    }
                    predicted.set(target);
                    switches.push(self.session.effective_user().to_string());
                    texts.push(super::pins::staged_pin_sql(
                        self.settings.dialect,
                        switches.len(),
                    ));
                }
            }
            msg::command_complete(&mut reply, intercept.tag());
            substitutions.push_back(Substitution {
                index,
                reply: reply.freeze(),
                impersonation: matches!(intercept, Intercept::Impersonate { .. }),
            });
        }
        // The rest of the string goes through the rewriter like any other query; the pins are
        // put back in afterwards since the rewriter refuses set_config on immuta settings.
        let placeholders: Vec<&str> = texts
            .iter()
            .zip(intercepts)
            .map(|(t, i)| if i.is_some() { "SELECT 1" } else { t.as_str() })
            .collect();
        // Rewritten whole (a SET search_path early in the string applies further on), once per
        // identity the string runs under; each statement takes its own identity's version.
        let whole = crate::rewrite::join_statements(&placeholders);
        let mut passes: Vec<(&str, Vec<String>)> = Vec::new();
        for user in &users {
            if passes.iter().any(|(u, _)| u == user) {
                continue;
            }
            let outcome = self.rewrite_as(&whole, user);
            let rewritten = match outcome.as_ref() {
                Ok(r) => r,
                Err(denial) => {
                    self.session.impersonation = saved;
                    self.refuse(denial, tag::QUERY);
                    return;
                }
            };
            let split = match &rewritten.sql {
                Some(sql) => split_statements(sql)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                None => placeholders.iter().map(|s| s.to_string()).collect(),
            };
            passes.push((user, split));
        }
        let sql: Vec<&str> = texts
            .iter()
            .zip(intercepts)
            .zip(&users)
            .enumerate()
            .map(|(index, ((original, i), user))| {
                if i.is_some() {
                    return original.as_str();
                }
                let (_, split) = passes
                    .iter()
                    .find(|(u, _)| u == user)
                    .expect("one pass per user");
                split[index].as_str()
            })
            .collect();
        // The session keeps the new identity only if the string commits.
        let effective = self.session.effective_user().to_string();
        let mut tokens = Vec::with_capacity(switches.len());
        for user in &switches {
            tokens.push(self.token_for(user).await);
        }
        let pinned = self.token_for(&effective).await;
        self.stage_tokens(&switches, &tokens);
        let backend = self.backend.as_mut().expect("ensure_backend ran");
        backend.pinned = Some((policy.generation, pinned));
        frontend::query_in(
            &mut self.to_backend,
            &crate::rewrite::join_statements(&sql),
            self.session.text_encoding,
        );
        // Session and transaction commands as sent, as for any simple query.
        let commands = sql
            .iter()
            .zip(intercepts)
            .filter(|(_, intercept)| intercept.is_none())
            .filter_map(|(statement, _)| classify(statement))
            .collect();
        self.pipeline.push(Expect::Query {
            forward: true,
            commands,
            substitutions,
        });
    }

    /// The SHOW row, `impersonated` being whom the session acts as at the SHOW's place.
    fn show_row(&self, out: &mut BytesMut, impersonated: Option<&str>) {
        let current = impersonated.unwrap_or("");
        msg::data_row_text(out, &[Some(current), Some(&self.session.login)]);
    }

    /// Checks and applies a change of identity; audited either way.
    fn impersonate(&mut self, target: Option<String>) -> Result<(), intercept::Refusal> {
        let login = &self.session.login;
        let policy = self.settings.policy.current();
        let result = intercept::authorize(
            &policy.config,
            login,
            self.session.impersonation.first(),
            target.as_deref(),
        );
        let outcome = match &result {
            Ok(()) => "allowed",
            Err(_) => "refused",
        };
        let ending = self
            .session
            .impersonation
            .current()
            .unwrap_or("")
            .to_string();
        let event = if target.is_some() {
            "impersonation_start"
        } else {
            "impersonation_end"
        };
        let target_user = target.as_deref().unwrap_or(&ending);
        tracing::info!(conn = self.id, event, login_user = %login, target_user, outcome, "impersonation");
        self.settings
            .audit
            .impersonation(&crate::audit::ImpersonationRecord {
                event,
                login_user: login,
                target_user,
                client_address: &self.session.peer,
                connection: self.id,
                outcome,
                sqlstate: result.as_ref().err().map(|r| r.code),
            });
        metrics::counter!("redveil_impersonations_total", "outcome" => outcome).increment(1);
        // Its place in the transaction order is known only when its reply comes (see
        // `Expect::Answer` and `Substitution::impersonation`).
        if result.is_ok() {
            self.session.impersonation.queue(target);
        }
        result
    }

    /// Parse of an impersonation statement: remembered, answered, never sent.
    pub(super) fn intercept_parse(&mut self, raw: &[u8]) -> Result<bool, RelayError> {
        // Text the proxy cannot read is refused by `on_parse`.
        let parse = match Parse::decode(&raw[5..], self.session.text_encoding) {
            Err(crate::protocol::ProtocolError::Text(_)) => return Ok(false),
            other => other?,
        };
        let Some(intercept) = intercept::classify(&parse.query) else {
            self.intercepted_statements.remove(parse.name);
            return Ok(false);
        };
        if !parse.name.is_empty() {
            self.session.statements.remove(parse.name);
        }
        self.intercepted_statements
            .insert(parse.name.to_string(), intercept);
        self.synthetic(msg::parse_complete);
        Ok(true)
    }

    /// Bind of an impersonation statement: the target may come from a parameter, in text or
    /// binary format (the same bytes for text).
    pub(super) fn intercept_bind(&mut self, raw: &[u8]) -> Result<bool, RelayError> {
        let head = BindHead::decode(&raw[5..])?;
        let Some(intercept) = self.intercepted_statements.get(head.statement).cloned() else {
            self.intercepted_portals.remove(head.portal);
            return Ok(false);
        };
        let values = BindValues::decode(&raw[5 + head.rest_offset..])?;
        let resolved = match intercept {
            Intercept::Impersonate {
                target: Target::Parameter(n),
                tag,
            } => {
                let target = match values.params.get(n - 1) {
                    Some((Some(bytes), _)) => match std::str::from_utf8(bytes) {
                        Ok(user) => Target::User(user.to_string()),
                        Err(_) => Target::User(String::from_utf8_lossy(bytes).into_owned()),
                    },
                    _ => Target::Nobody,
                };
                Intercept::Impersonate { target, tag }
            }
            other => other,
        };
        self.intercepted_portals
            .insert(head.portal.to_vec(), (resolved, values.result_format));
        self.synthetic(msg::bind_complete);
        Ok(true)
    }

    pub(super) fn intercept_describe(&mut self, kind: u8, name: &str) -> bool {
        let mut reply = BytesMut::new();
        if kind == b'S' {
            let Some(intercept) = self.intercepted_statements.get(name) else {
                return false;
            };
            msg::parameter_description(&mut reply, &vec![msg::TEXT_OID; intercept.parameters()]);
            describe_rows(&mut reply, intercept, 0);
        } else {
            let Some((intercept, format)) = self.intercepted_portals.get(name.as_bytes()) else {
                return false;
            };
            describe_rows(&mut reply, intercept, *format);
        }
        self.pipeline.push(Expect::Synthetic(reply.freeze()));
        true
    }

    pub(super) fn intercept_execute(&mut self, portal: &[u8]) -> bool {
        let Some((intercept, _)) = self.intercepted_portals.get(portal).cloned() else {
            return false;
        };
        if self.session.tx_status == IN_FAILED_TRANSACTION {
            self.refuse_with("25P02", ABORTED, tag::PARSE);
            return true;
        }
        let mut reply = BytesMut::new();
        match &intercept {
            Intercept::Show => self.show_row(&mut reply, self.session.impersonation.current()),
            Intercept::Impersonate { target, .. } => {
                let target = match target {
                    Target::User(user) => Some(user.clone()),
                    _ => None,
                };
                if let Err(refusal) = self.impersonate(target) {
                    self.refuse_with(refusal.code, &refusal.message, tag::PARSE);
                    return true;
                }
            }
        }
        msg::command_complete(&mut reply, intercept.tag());
        self.push_answer(&intercept, reply, false);
        true
    }

    /// Queues the proxy's answer to `intercept`; `ready` for a simple query, whose answer ends
    /// with ReadyForQuery.
    fn push_answer(&mut self, intercept: &Intercept, reply: BytesMut, ready: bool) {
        self.pipeline.push(Expect::Answer {
            reply: reply.freeze(),
            ready,
            impersonation: matches!(intercept, Intercept::Impersonate { .. }),
        });
    }

    pub(super) fn intercept_close(&mut self, kind: u8, name: &str) -> bool {
        let known = if kind == b'S' {
            self.intercepted_statements.remove(name).is_some()
        } else {
            self.intercepted_portals.remove(name.as_bytes()).is_some()
        };
        if known {
            self.synthetic(msg::close_complete);
        }
        known
    }

    fn synthetic(&mut self, encode: fn(&mut BytesMut)) {
        let mut reply = BytesMut::new();
        encode(&mut reply);
        self.pipeline.push(Expect::Synthetic(Bytes::from(reply)));
    }
}

fn describe_rows(out: &mut BytesMut, intercept: &Intercept, format: i16) {
    match intercept {
        Intercept::Show => msg::row_description_text(out, &SHOW_COLUMNS, format),
        Intercept::Impersonate { .. } => msg::no_data(out),
    }
}
