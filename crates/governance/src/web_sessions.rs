//! The portal's sessions, server-side: the cookie holds 256 random bits, the table their
//! SHA-256 with the user, a CSRF token and the expiry. A suspended user's sessions stop
//! working at once (the lookup joins the active users); sign-out and a password change end
//! them for good.

use std::time::{Duration, SystemTime};

use sqlx::Row;

use crate::{GovernanceError, Platform, User, UserRole, hash_token, new_token};

/// A working day, as for API sessions.
pub const WEB_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// A live session as a request sees it.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub user: User,
    /// The synchronizer token every state-changing request of this session must carry.
    pub csrf: String,
}

impl Platform {
    /// Opens a session for a user who just signed in; returns the cookie's value (the only
    /// copy) and the session.
    pub async fn open_web_session(
        &self,
        user: &User,
    ) -> Result<(String, WebSession), GovernanceError> {
        let token = new_token("nijiw_")?;
        let csrf = new_token("")?;
        let now = SystemTime::now();
        sqlx::query("INSERT INTO web_sessions (digest, name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hash_token(&token))
            .bind(&user.name)
            .bind(&csrf)
            .bind(niji_audit::rfc3339(now))
            .bind(niji_audit::rfc3339(now + WEB_SESSION_LIFETIME))
            .execute(self.db().pool())
            .await?;
        Ok((
            token,
            WebSession {
                user: user.clone(),
                csrf,
            },
        ))
    }

    /// The live session a cookie names: not ended, not expired, its user not suspended.
    pub async fn web_session(&self, token: &str) -> Result<Option<WebSession>, GovernanceError> {
        if !token.starts_with("nijiw_") {
            return Ok(None);
        }
        let row = sqlx::query("SELECT u.name, u.role, s.csrf FROM web_sessions s JOIN users u ON u.name = s.name WHERE s.digest = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND u.disabled = 0")
            .bind(hash_token(token))
            .bind(niji_audit::now_rfc3339())
            .fetch_optional(self.db().pool())
            .await?;
        Ok(row.and_then(|r| {
            Some(WebSession {
                user: User {
                    name: r.get("name"),
                    role: UserRole::parse(r.get::<&str, _>("role"))?,
                },
                csrf: r.get("csrf"),
            })
        }))
    }

    /// Signs out: the session ends for good (a copied cookie is worth nothing after).
    pub async fn end_web_session(&self, token: &str, via: &str) -> Result<(), GovernanceError> {
        let digest = hash_token(token);
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE web_sessions SET ended_at = $2 WHERE digest = $1 AND ended_at IS NULL RETURNING name",
        )
        .bind(&digest)
        .bind(niji_audit::now_rfc3339())
        .fetch_optional(self.db().pool())
        .await?;
        if let Some(name) = name {
            self.audited(&name, "signout", &serde_json::json!({ "via": via }))
                .await?;
        }
        Ok(())
    }

    /// Ends every session of `user` (a new password).
    pub(crate) async fn end_web_sessions_of(&self, user: &str) -> Result<(), GovernanceError> {
        sqlx::query("UPDATE web_sessions SET ended_at = $2 WHERE name = $1 AND ended_at IS NULL")
            .bind(user)
            .bind(niji_audit::now_rfc3339())
            .execute(self.db().pool())
            .await?;
        Ok(())
    }
}
