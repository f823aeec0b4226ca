//! Signed-in sessions shared by HTTP and Flight SQL: a random bearer token per sign-in, kept
//! only as its digest, expiring after a working day.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use niji_governance::hash_token;

const LIFETIME: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    /// A new session for `user`; the returned token is the only copy.
    pub fn open(&self, user: &str) -> Result<String, niji_governance::GovernanceError> {
        let token = niji_governance::new_token("nijis_")?;
        let mut map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, at)| now.duration_since(*at) < LIFETIME);
        map.insert(hash_token(&token), (user.to_string(), now));
        Ok(token)
    }

    /// The user of a live session.
    pub fn user(&self, token: &str) -> Option<String> {
        let map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&hash_token(token))
            .filter(|(_, at)| at.elapsed() < LIFETIME)
            .map(|(u, _)| u.clone())
    }

    /// Ends every session of `user` (suspended, or gone).
    pub fn end_all_of(&self, user: &str) {
        let mut map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (u, _)| u != user);
    }
}
