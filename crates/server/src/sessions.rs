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
    pub fn open(&self, user: &str) -> Result<String, getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let token = format!("nijis_{}", niji_pseudo::hex32(&raw));
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
}
