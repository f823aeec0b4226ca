//! Sign-in attempts per client address: after [`MAX_FAILURES`] failures within [`WINDOW`] an
//! address is refused before its password is checked (so it cannot make argon2 burn the
//! cores). The lockout per name is the platform's, counted in the audit log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const MAX_FAILURES: usize = 20;
pub(crate) const WINDOW: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Default)]
pub(crate) struct SignInLimiter {
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl SignInLimiter {
    fn recent(list: &mut Vec<Instant>, now: Instant) {
        list.retain(|at| now.duration_since(*at) < WINDOW);
    }

    /// Whether `addr` may try now.
    pub(crate) fn allows(&self, addr: IpAddr) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match map.get_mut(&addr) {
            Some(list) => {
                Self::recent(list, now);
                list.len() < MAX_FAILURES
            }
            None => true,
        }
    }

    pub(crate) fn failed(&self, addr: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Forget quiet addresses so the map cannot grow without bound.
        if map.len() > 10_000 {
            map.retain(|_, list| {
                Self::recent(list, now);
                !list.is_empty()
            });
        }
        let list = map.entry(addr).or_default();
        Self::recent(list, now);
        list.push(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_stopped_after_its_failures_and_others_are_not() {
        let limiter = SignInLimiter::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.allows(a));
            limiter.failed(a);
        }
        assert!(!limiter.allows(a));
        assert!(limiter.allows(b));
    }
}
