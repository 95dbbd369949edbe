//! Audit records as JSON lines, written by a task of their own through a bounded buffer: a
//! slow sink never stalls a session, and a record that does not fit is counted in metrics
//! and logged, never dropped silently.

use serde::Serialize;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// One change (or refused change) of a session's effective user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImpersonationRecord<'a> {
    /// `impersonation_start` or `impersonation_end`.
    pub event: &'static str,
    pub login_user: &'a str,
    /// The user impersonated (starting) or no longer impersonated (ending); empty if none.
    pub target_user: &'a str,
    pub client_address: &'a str,
    pub connection: u64,
    /// `allowed` or `refused`.
    pub outcome: &'static str,
    /// The SQLSTATE of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<&'a str>,
}

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Milliseconds since the Unix epoch.
    time: u128,
    #[serde(flatten)]
    record: &'a T,
}

/// Where records go; cheap to clone into every session. Disabled when no path is configured.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    sink: Option<mpsc::Sender<String>>,
}

impl AuditLog {
    /// Starts the writer task appending to `path` (created if missing) with room for `buffer`
    /// records in flight.
    pub async fn open(path: &Path, buffer: usize) -> std::io::Result<Self> {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        let (sink, mut records) = mpsc::channel::<String>(buffer.max(1));
        let path: PathBuf = path.to_path_buf();
        tokio::spawn(async move {
            while let Some(line) = records.recv().await {
                let mut batch = line;
                // Whatever else is already queued goes out in the same write.
                while let Ok(more) = records.try_recv() {
                    batch.push_str(&more);
                }
                if let Err(e) = file.write_all(batch.as_bytes()).await {
                    tracing::error!(path = %path.display(), error = %e, "audit log write failed");
                    metrics::counter!("redveil_audit_write_errors_total").increment(1);
                }
                let _ = file.flush().await;
            }
        });
        Ok(Self { sink: Some(sink) })
    }

    pub fn impersonation(&self, record: &ImpersonationRecord<'_>) {
        self.record("impersonation", record);
    }

    fn record<T: Serialize>(&self, kind: &'static str, record: &T) {
        let Some(sink) = &self.sink else {
            return;
        };
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut line = match serde_json::to_string(&Line { kind, time, record }) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "audit record not serializable");
                return;
            }
        };
        line.push('\n');
        if sink.try_send(line).is_err() {
            metrics::counter!("redveil_audit_dropped_total").increment(1);
            tracing::warn!(
                kind,
                "audit buffer full or closed; record dropped and counted"
            );
        }
    }
}
