//! The portal's cookies: the session, the sign-in form's CSRF token (before there is a
//! session) and the language. Behind TLS the first two are `__Host-` and `Secure`; on plain
//! loopback HTTP browsers refuse both, so there they carry neither.

use axum::http::HeaderMap;

use crate::PortalSettings;

pub(crate) const LANG: &str = "niji_lang";

pub(crate) fn session_name(settings: &PortalSettings) -> &'static str {
    if settings.behind_tls {
        "__Host-niji_session"
    } else {
        "niji_session"
    }
}

pub(crate) fn signin_name(settings: &PortalSettings) -> &'static str {
    if settings.behind_tls {
        "__Host-niji_signin"
    } else {
        "niji_signin"
    }
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure behind TLS; `max_age` 0
/// removes it.
pub(crate) fn set(settings: &PortalSettings, name: &str, value: &str, max_age: u64) -> String {
    let secure = if settings.behind_tls { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; niji_session=nijiw_x; b=2".parse().unwrap());
        assert_eq!(get(&h, "niji_session"), Some("nijiw_x"));
        assert_eq!(get(&h, "niji"), None);
    }

    #[test]
    fn secure_behind_tls_only() {
        let tls = PortalSettings { behind_tls: true };
        let plain = PortalSettings::default();
        assert!(set(&tls, session_name(&tls), "v", 10).ends_with("; Secure"));
        assert!(session_name(&tls).starts_with("__Host-"));
        let c = set(&plain, session_name(&plain), "v", 10);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
    }
}
