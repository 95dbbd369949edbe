//! Cancel keys. Each client gets its own key; a CancelRequest is forwarded only to the backend
//! connection running that client's statement, and never to one that has moved on.

use crate::protocol::startup::encode_cancel;
use dashmap::DashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// Where a client's statement currently runs. Setting and clearing take the same lock a cancel
/// holds while it is delivered, so a connection cannot go back to the pool (and to another
/// client) while a cancel meant for this client is on its way to it.
#[derive(Default)]
pub struct CancelSlot {
    target: Mutex<Option<(SocketAddr, (i32, i32))>>,
}

impl CancelSlot {
    pub async fn set(&self, addr: SocketAddr, key: (i32, i32)) {
        *self.target.lock().await = Some((addr, key));
    }

    pub async fn clear(&self) {
        *self.target.lock().await = None;
    }

    /// Sends the backend's CancelRequest, holding the slot until the cluster has taken it.
    async fn cancel(&self) {
        let guard = self.target.lock().await;
        let Some((addr, (pid, secret))) = *guard else {
            return;
        };
        let deliver = async {
            let mut socket = tokio::net::TcpStream::connect(addr).await?;
            socket.write_all(&encode_cancel(pid, secret)).await?;
            // The cluster closes the socket once it has signalled the backend.
            let mut sink = [0u8; 1];
            let _ = socket.read(&mut sink).await;
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(5), deliver).await {
            Ok(Ok(())) => metrics::counter!("redveil_cancels_total").increment(1),
            Ok(Err(e)) => tracing::warn!(error = %e, "cancel request to the cluster failed"),
            Err(_) => tracing::warn!("cancel request to the cluster timed out"),
        }
    }
}

/// Live clients by the cancel key the proxy gave them.
#[derive(Default)]
pub struct CancelRegistry {
    slots: DashMap<(i32, i32), Arc<CancelSlot>>,
}

impl CancelRegistry {
    /// A fresh key and its slot; the key is unregistered by dropping the guard. `pid` is the
    /// key's process id when the client has a backend connection of its own (session mode):
    /// the backend's, which drivers compare with `pg_backend_pid()` and NOTIFY senders; the
    /// secret stays the proxy's.
    pub fn register(self: &Arc<Self>, pid: Option<i32>) -> CancelGuard {
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut bytes = [0u8; 8];
            if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
                continue;
            }
            let pid = pid.unwrap_or(
                i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7fff_ffff,
            );
            let secret = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            let key = (pid, secret);
            let slot = Arc::new(CancelSlot::default());
            if let dashmap::Entry::Vacant(e) = self.slots.entry(key) {
                e.insert(slot.clone());
                return CancelGuard {
                    registry: self.clone(),
                    key,
                    slot,
                };
            }
        }
    }

    /// Handles a CancelRequest; unknown keys are ignored, as PostgreSQL does.
    pub async fn cancel(&self, key: (i32, i32)) {
        let slot = self.slots.get(&key).map(|s| s.clone());
        if let Some(slot) = slot {
            slot.cancel().await;
        }
    }
}

/// A registered cancel key, removed on drop.
pub struct CancelGuard {
    registry: Arc<CancelRegistry>,
    pub key: (i32, i32),
    pub slot: Arc<CancelSlot>,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.registry.slots.remove(&self.key);
    }
}
