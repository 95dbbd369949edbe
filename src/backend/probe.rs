//! What the server makes of a client's startup settings. PostgreSQL checks them at connect
//! time (an unknown parameter or a bad value ends the login with FATAL) and reports the ones
//! it reports in its own spelling (`'utf-8'` becomes `UTF8`, `iso` becomes `ISO, MDY`). The
//! proxy logs in to its pool, not as the client, so it asks the cluster on a connection of its
//! own (outside the pool: a login must not wait for a pool its clients may have filled):
//! each setting is set and read back. Answers are kept per database, so a driver's usual
//! settings cost one connection per process, not one per login.

use super::{BackendConn, BackendError, BackendPool};
use crate::dialect::{Dialect, DialectMismatch, DialectSetting};
use crate::protocol::{backend::ErrorFields, frontend, tag, BodyReader};
use bytes::BytesMut;
use dashmap::DashMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Answers kept, at most; past that, settings are probed at every login.
const KEPT: usize = 4096;

/// How long the server may take to answer a probe.
const DEADLINE: Duration = Duration::from_secs(5);

/// Why a client's startup settings were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The server refused a setting, as it would have refused the client's login.
    #[error("{message}")]
    Refused { code: String, message: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The server's answers, by database, setting name (lower-cased) and value.
#[derive(Default)]
pub struct SettingsProbe {
    shown: DashMap<(String, String, String), String>,
}

impl SettingsProbe {
    /// Each of `settings` as the server shows it, in order; an error if the server refuses
    /// one.
    pub async fn shown(
        &self,
        pool: &BackendPool,
        database: &str,
        settings: &[(String, String)],
        dialect: crate::dialect::Dialect,
    ) -> Result<Vec<(String, String)>, ProbeError> {
        let key = |(name, value): &(String, String)| {
            (database.to_string(), name.to_lowercase(), value.clone())
        };
        let unknown: Vec<&(String, String)> = settings
            .iter()
            .filter(|s| !self.shown.contains_key(&key(s)))
            .collect();
        if !unknown.is_empty() {
            let answers = probe(pool, &unknown, dialect).await?;
            for (setting, answer) in unknown.iter().zip(answers) {
                if self.shown.len() < KEPT {
                    self.shown.insert(key(setting), answer);
                }
            }
        }
        // Anything not kept (past `KEPT`) is probed again; rare enough to do one by one.
        let mut out = Vec::with_capacity(settings.len());
        for setting in settings {
            let value = match self.shown.get(&key(setting)) {
                Some(shown) => shown.clone(),
                None => probe(pool, &[setting], dialect).await?.remove(0),
            };
            out.push((setting.0.clone(), value));
        }
        Ok(out)
    }
}

/// Sets each setting and reads it back on a new connection, then closes it. `set_config` takes
/// the value as the server takes a startup parameter, raw (`hr,public` is a list of two
/// schemas, where `SET search_path = 'hr,public'` names one).
async fn probe(
    pool: &BackendPool,
    settings: &[&(String, String)],
    dialect: crate::dialect::Dialect,
) -> Result<Vec<String>, ProbeError> {
    let queries: Vec<String> = settings
        .iter()
        .map(|(name, value)| dialect.set_config_sql(name, value))
        .collect();
    answers(pool.target(), &queries, "probing startup settings").await
}

/// Runs each query, a single value each, on a new connection of the proxy's own, then closes
/// it: the value, or the server's refusal.
async fn answers(
    target: &super::BackendTarget,
    queries: &[String],
    doing: &'static str,
) -> Result<Vec<String>, ProbeError> {
    let mut conn = BackendConn::connect(target).await?;
    let mut out = BytesMut::new();
    for sql in queries {
        frontend::query(&mut out, sql);
    }
    frontend::put_message(&mut out, tag::TERMINATE, &[]);
    conn.stream
        .write_all(&out)
        .await
        .map_err(BackendError::Io)?;
    // One answer per Query: its value, or the server's refusal.
    let read = tokio::time::timeout(DEADLINE, async {
        let mut answers = Vec::with_capacity(queries.len());
        for _ in queries {
            let mut answer = Ok(String::new());
            loop {
                let (message_tag, raw) = conn.read_message().await?;
                match message_tag {
                    tag::DATA_ROW => answer = Ok(single_text_column(&raw[5..]).unwrap_or_default()),
                    tag::ERROR_RESPONSE => answer = Err(ErrorFields::decode(&raw[5..])?),
                    tag::READY_FOR_QUERY => break,
                    _ => {}
                }
            }
            answers.push(answer);
        }
        Ok::<_, BackendError>(answers)
    })
    .await
    .map_err(|_| BackendError::Timeout(doing))??;
    read.into_iter()
        .map(|answer| {
            answer.map_err(|fields| ProbeError::Refused {
                code: fields.code,
                message: fields.message,
            })
        })
        .collect()
}

/// The engine behind the proxy, known from the first successful `version()`: at start, or, if
/// the cluster could not be reached then, at the next client login.
pub struct EngineCell {
    setting: DialectSetting,
    known: std::sync::OnceLock<Result<Dialect, DialectMismatch>>,
}

/// Why the engine is not known.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Mismatch(#[from] DialectMismatch),
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

impl EngineCell {
    pub fn new(setting: DialectSetting) -> Self {
        Self {
            setting,
            known: Default::default(),
        }
    }

    /// The engine, asking the cluster if it is not known yet.
    pub async fn get(&self, target: &super::BackendTarget) -> Result<Dialect, EngineError> {
        if let Some(known) = self.known.get() {
            return Ok(known.clone()?);
        }
        let version = cluster_version(target).await?;
        let resolved = Dialect::resolve(self.setting, &version);
        Ok(self.known.get_or_init(|| resolved).clone()?)
    }
}

/// The cluster's `version()`, read on a connection of the proxy's own (how `backend.dialect =
/// "auto"` learns which engine it fronts).
pub async fn cluster_version(target: &super::BackendTarget) -> Result<String, ProbeError> {
    let mut answers = answers(
        target,
        &["SELECT version()".to_string()],
        "reading version()",
    )
    .await?;
    Ok(answers.remove(0))
}

/// The text of a DataRow's only column (`None` for NULL or a malformed row).
fn single_text_column(body: &[u8]) -> Option<String> {
    let mut r = BodyReader::new(body);
    if r.i16().ok()? != 1 {
        return None;
    }
    let len = usize::try_from(r.i32().ok()?).ok()?;
    Some(String::from_utf8_lossy(r.bytes(len).ok()?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_row_of_one_text_column() {
        assert_eq!(
            single_text_column(b"\x00\x01\x00\x00\x00\x04UTF8"),
            Some("UTF8".into())
        );
        assert_eq!(single_text_column(b"\x00\x01\xff\xff\xff\xff"), None);
        assert_eq!(single_text_column(b"\x00\x02\x00\x00"), None);
        assert_eq!(single_text_column(b"\x00\x01\x00\x00\x00\x09UTF8"), None);
    }
}
