//! Which idle connection a checkout takes. A pure function over descriptors of the idle
//! connections, so the order is testable without sockets.

use crate::backend::BackendConn;

/// Whom a checkout is for.
#[derive(Clone, Copy, Debug)]
pub struct Affinity<'a> {
    /// The client connection's id.
    pub client: u64,
    /// The client's effective user (the impersonated one, if any).
    pub user: &'a str,
}

/// How a checkout found its connection, which says what the caller must do before the
/// client's statement runs; the `affinity` label of `redveil_pool_checkouts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Used last by this client and holding no other identity: nothing to replay or reset.
    SameClient,
    /// Holding only this client's identity, used last by another client: a clean and replay,
    /// pipelined with the statement.
    SameIdentity,
    /// Opened for this checkout: a session replay.
    New,
    /// Never used, or reset completely since: at most a replay of the client's settings.
    Clean,
    /// Holding another identity: a complete reset first.
    OtherIdentity,
}

impl Reuse {
    pub fn label(self) -> &'static str {
        match self {
            Reuse::SameClient => "same_client",
            Reuse::SameIdentity => "same_identity",
            Reuse::New => "new",
            Reuse::Clean => "clean",
            Reuse::OtherIdentity => "other_identity",
        }
    }
}

/// What the choice needs to know of one idle connection, for one checkout.
#[derive(Clone, Copy, Debug)]
pub struct IdleInfo {
    pub last_client: Option<u64>,
    /// `BackendConn::serves_only` for the checkout's user.
    pub serves_only: bool,
    /// No identity was placed on it since it was opened or reset completely.
    pub clean: bool,
    /// When it came back, as a sequence number (higher = more recent).
    pub returned: u64,
}

impl IdleInfo {
    pub fn of(conn: &BackendConn, user: &str, returned: u64) -> Self {
        IdleInfo {
            last_client: conn.last_client,
            serves_only: conn.serves_only(user),
            clean: conn.identities.is_empty(),
            returned,
        }
    }

    /// What handing this connection to `client` costs.
    pub fn reuse(&self, client: u64) -> Reuse {
        if !self.serves_only {
            Reuse::OtherIdentity
        } else if self.last_client == Some(client) {
            Reuse::SameClient
        } else if self.clean && self.last_client.is_none() {
            Reuse::Clean
        } else {
            Reuse::SameIdentity
        }
    }
}

/// The outcome of a choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Take the idle connection at this index.
    Take(usize, Reuse),
    /// Reserve a slot and open a new connection.
    Open,
    /// Queue until a connection comes back or a slot frees.
    Wait,
}

/// Chooses for `client` among `idle`; `room` says whether another connection may be opened.
///
/// Cheapest first: the client's own connection, then a clean one (at most a replay of the
/// client's settings), then one of its identity (a clean and replay, pipelined with the
/// statement). A clean idle connection comes before opening a new one, though a new one is
/// clean too: it is the same thing minus a connect and login (several round trips, a SCRAM
/// exchange, a backend process). Opening comes before taking another identity's connection:
/// the connect is paid once for the connection's lifetime, while the complete reset (a
/// confirmed round trip, after which the proxy's prepared statements must be prepared again)
/// is paid on this checkout, and again when the identity we displaced comes back. Of those,
/// the least recently returned is taken, as its identity is the least likely to come back
/// soon; in the other groups the most recently returned, so the rest age out under
/// `idle_timeout_s`.
///
/// With `rotate` (`pool.reuse = "rotate"`), the least recently returned of the connections
/// that need no reset is taken instead.
pub fn choose(idle: &[IdleInfo], client: u64, room: bool, rotate: bool) -> Choice {
    let of = |reuse: Reuse| {
        idle.iter()
            .enumerate()
            .filter(move |(_, c)| c.reuse(client) == reuse)
    };
    if rotate {
        let oldest = idle
            .iter()
            .enumerate()
            .filter(|(_, c)| c.reuse(client) != Reuse::OtherIdentity)
            .min_by_key(|(_, c)| c.returned);
        if let Some((i, c)) = oldest {
            return Choice::Take(i, c.reuse(client));
        }
    }
    for reuse in [Reuse::SameClient, Reuse::Clean, Reuse::SameIdentity] {
        if let Some((i, _)) = of(reuse).max_by_key(|(_, c)| c.returned) {
            return Choice::Take(i, reuse);
        }
    }
    if room {
        return Choice::Open;
    }
    match of(Reuse::OtherIdentity).min_by_key(|(_, c)| c.returned) {
        Some((i, _)) => Choice::Take(i, Reuse::OtherIdentity),
        None => Choice::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u64 = 7;

    fn idle(last_client: Option<u64>, identities: &[&str], returned: u64) -> IdleInfo {
        IdleInfo {
            last_client,
            serves_only: identities.iter().all(|u| *u == "ann"),
            clean: identities.is_empty(),
            returned,
        }
    }

    #[test]
    fn rotation_takes_turns_among_connections_that_need_no_reset() {
        let pool = [
            idle(Some(ME), &["ann"], 9),
            idle(None, &[], 4),
            idle(Some(2), &["bob"], 0),
            idle(Some(1), &["ann"], 6),
        ];
        assert_eq!(choose(&pool, ME, true, true), Choice::Take(1, Reuse::Clean));
        assert_eq!(
            choose(&pool[2..], ME, false, true),
            Choice::Take(1, Reuse::SameIdentity)
        );
        assert_eq!(
            choose(&pool[2..3], ME, false, true),
            Choice::Take(0, Reuse::OtherIdentity)
        );
    }

    #[test]
    fn own_connection_first() {
        let pool = [
            idle(Some(1), &["ann"], 9),
            idle(None, &[], 8),
            idle(Some(ME), &["ann"], 1),
            idle(Some(2), &["bob"], 0),
        ];
        assert_eq!(
            choose(&pool, ME, true, false),
            Choice::Take(2, Reuse::SameClient)
        );
    }

    #[test]
    fn own_connection_that_took_another_identity_is_not_own() {
        // The client impersonated bob on it since: it needs a reset like another's.
        let pool = [idle(Some(ME), &["ann", "bob"], 5), idle(None, &[], 1)];
        assert_eq!(
            choose(&pool, ME, false, false),
            Choice::Take(1, Reuse::Clean)
        );
        assert_eq!(
            choose(&pool[..1], ME, false, false),
            Choice::Take(0, Reuse::OtherIdentity)
        );
    }

    #[test]
    fn clean_then_same_identity_then_new() {
        let pool = [idle(None, &[], 4), idle(Some(1), &["ann"], 2)];
        assert_eq!(
            choose(&pool, ME, true, false),
            Choice::Take(0, Reuse::Clean)
        );
        let pool = [idle(Some(2), &["bob"], 4), idle(Some(1), &["ann"], 2)];
        assert_eq!(
            choose(&pool, ME, true, false),
            Choice::Take(1, Reuse::SameIdentity)
        );
        assert_eq!(choose(&pool[..1], ME, true, false), Choice::Open);
        assert_eq!(choose(&[], ME, true, false), Choice::Open);
        assert_eq!(choose(&[], ME, false, false), Choice::Wait);
    }

    #[test]
    fn most_recently_returned_within_a_group() {
        let pool = [idle(None, &[], 3), idle(None, &[], 6), idle(None, &[], 4)];
        assert_eq!(
            choose(&pool, ME, false, false),
            Choice::Take(1, Reuse::Clean)
        );
        let pool = [idle(Some(ME), &[], 1), idle(Some(ME), &["ann"], 2)];
        assert_eq!(
            choose(&pool, ME, false, false),
            Choice::Take(1, Reuse::SameClient)
        );
    }

    #[test]
    fn another_identity_only_when_full_and_least_recent_first() {
        let pool = [
            idle(Some(1), &["bob"], 5),
            idle(Some(ME), &["carl"], 2),
            idle(Some(3), &["ann", "bob"], 8),
        ];
        assert_eq!(choose(&pool, ME, true, false), Choice::Open);
        assert_eq!(
            choose(&pool, ME, false, false),
            Choice::Take(1, Reuse::OtherIdentity)
        );
    }

    #[test]
    fn wait_when_nothing_idle_and_no_room() {
        assert_eq!(choose(&[], ME, false, false), Choice::Wait);
    }

    #[test]
    fn labels() {
        let labels: Vec<_> = [
            Reuse::SameClient,
            Reuse::SameIdentity,
            Reuse::New,
            Reuse::Clean,
            Reuse::OtherIdentity,
        ]
        .map(Reuse::label)
        .into();
        assert_eq!(
            labels,
            [
                "same_client",
                "same_identity",
                "new",
                "clean",
                "other_identity"
            ]
        );
    }
}
