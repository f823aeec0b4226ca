//! Accounts for people at the portal: passwords (argon2id), an optional TOTP second factor,
//! sign-in with lockout, and the administrator's list of accounts. API tokens stay for
//! programs (see [`Platform::sign_in`]).

use std::time::{Duration, SystemTime};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::Serialize;
use sqlx::Row;

use crate::platform::is_plain_name;
use crate::{Action, GovernanceError, Platform, User, UserRole, totp};

/// Failed sign-ins under one name within [`LOCK_WINDOW`] after which the name is locked until
/// the window has passed (the alert rule `signin_failed` may suspend it later still).
pub const LOCK_AFTER: usize = 5;
pub const LOCK_WINDOW: Duration = Duration::from_secs(15 * 60);
const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 256;

/// The hash of a password no one has: a sign-in under an unknown name costs the same time as
/// one under a known name, so timing does not tell which names exist.
fn nobody_phc() -> String {
    static NOBODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NOBODY
        .get_or_init(|| hash_password("no one has this password").unwrap_or_default())
        .clone()
}

/// A line of the administrator's list of accounts.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub name: String,
    pub role: UserRole,
    pub organisation: Option<String>,
    pub suspended: bool,
    pub has_password: bool,
    pub has_second_factor: bool,
}

/// A second factor being enrolled: the secret to type or scan, shown once.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

fn hash_password(password: &str) -> Result<String, GovernanceError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| GovernanceError::Refused(format!("password hashing: {e}")))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn check_strength(name: &str, password: &str) -> Result<(), GovernanceError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        return Err(GovernanceError::Refused(format!(
            "a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )));
    }
    if password.to_lowercase().contains(&name.to_lowercase()) {
        return Err(GovernanceError::Refused(
            "a password may not contain the user's name".into(),
        ));
    }
    Ok(())
}

/// Argon2 takes tens of milliseconds of a core: off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, GovernanceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GovernanceError::Refused(format!("password check stopped: {e}")))
}

impl Platform {
    /// Sets `user`'s portal password: by an administrator (or the custodian at the shell), or
    /// by the user themself after [`Self::change_password`] checked the current one.
    pub async fn set_password(
        &self,
        actor: &str,
        user: &str,
        password: &str,
    ) -> Result<(), GovernanceError> {
        if actor != user {
            self.may(actor, Action::ManageUsers, "set passwords")
                .await?;
        }
        check_strength(user, password)?;
        if self.db().user(user).await?.is_none() {
            return Err(GovernanceError::NotFound(format!("user {user}")));
        }
        let password = password.to_string();
        let phc = blocking(move || hash_password(&password)).await??;
        sqlx::query(
            "INSERT INTO user_passwords (name, phc, changed_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET phc = excluded.phc, changed_at = excluded.changed_at",
        )
        .bind(user)
        .bind(phc)
        .bind(niji_audit::now_rfc3339())
        .execute(self.db().pool())
        .await?;
        // Every session of the user ends: whoever knew the old password is out.
        self.end_web_sessions_of(user).await?;
        self.audited(actor, "user.password", &serde_json::json!({ "user": user }))
            .await
    }

    /// The user changes their own password, proving the current one.
    pub async fn change_password(
        &self,
        user: &str,
        current: &str,
        new: &str,
    ) -> Result<(), GovernanceError> {
        let phc = self.phc_of(user).await?.unwrap_or_else(nobody_phc);
        let current = current.to_string();
        if !blocking(move || password_matches(&current, &phc)).await? {
            let e = GovernanceError::Refused("the current password is wrong".into());
            return Err(self
                .refusal(user, serde_json::json!({"attempted": "change password"}), e)
                .await);
        }
        self.set_password(user, user, new).await
    }

    async fn phc_of(&self, user: &str) -> Result<Option<String>, GovernanceError> {
        Ok(sqlx::query_scalar("SELECT p.phc FROM user_passwords p JOIN users u ON u.name = p.name WHERE p.name = $1 AND u.disabled = 0")
            .bind(user)
            .fetch_optional(self.db().pool())
            .await?)
    }

    /// Failed sign-ins under `name` within the lock window.
    async fn recent_failures(&self, name: &str) -> Result<usize, GovernanceError> {
        let since = niji_audit::rfc3339(SystemTime::now() - LOCK_WINDOW);
        Ok(self
            .audit()
            .entries_since(
                Some(name),
                "signin",
                &since,
                Some("\"outcome\":\"refused\""),
            )
            .await?
            .len())
    }

    /// Checks a password (and the second factor's code, for a user who has one). Every attempt
    /// is logged (never the password or the code); after [`LOCK_AFTER`] failures within
    /// [`LOCK_WINDOW`] the name is locked, even for the right password.
    pub async fn sign_in_with_password(
        &self,
        name: &str,
        password: &str,
        code: Option<&str>,
        via: &str,
    ) -> Result<User, GovernanceError> {
        let shown: String = name.chars().take(64).collect();
        if self.recent_failures(&shown).await? >= LOCK_AFTER {
            let detail = serde_json::json!({"via": via, "outcome": "locked"});
            self.audited(&shown, "signin", &detail).await?;
            return Err(GovernanceError::Refused(format!(
                "too many failed sign-ins: try again in {} minutes",
                LOCK_WINDOW.as_secs() / 60
            )));
        }
        let row = if is_plain_name(name) {
            sqlx::query("SELECT u.name, u.role, p.phc, p.totp_secret, p.totp_last_step FROM users u JOIN user_passwords p ON p.name = u.name WHERE u.name = $1 AND u.disabled = 0")
                .bind(name)
                .fetch_optional(self.db().pool())
                .await?
        } else {
            None
        };
        let phc = row
            .as_ref()
            .map(|r| r.get::<String, _>("phc"))
            .unwrap_or_else(nobody_phc);
        let given = password.to_string();
        let mut ok = blocking(move || password_matches(&given, &phc)).await? && row.is_some();
        let mut user = None;
        if let (true, Some(r)) = (ok, &row) {
            let secret: Option<String> = r.get("totp_secret");
            if let Some(secret) = secret.as_deref() {
                ok = self
                    .take_totp_step(name, secret, code.unwrap_or(""), r.get("totp_last_step"))
                    .await?;
            }
            user = UserRole::parse(r.get::<&str, _>("role")).map(|role| User {
                name: r.get("name"),
                role,
            });
        }
        let outcome = if ok && user.is_some() {
            "ok"
        } else {
            "refused"
        };
        let detail = serde_json::json!({"via": via, "outcome": outcome});
        self.audited(&shown, "signin", &detail).await?;
        match user.filter(|_| ok) {
            Some(user) => Ok(user),
            None => {
                if let Err(e) = self.watch(&shown).await {
                    tracing::warn!(error = %e, "alert rules after a failed sign-in");
                }
                Err(GovernanceError::Unauthenticated)
            }
        }
    }

    /// Accepts `code` once: the step is stored only if it is later than the last one taken,
    /// so two sign-ins racing with one code cannot both pass.
    async fn take_totp_step(
        &self,
        name: &str,
        secret: &str,
        code: &str,
        last_step: i64,
    ) -> Result<bool, GovernanceError> {
        let Some(key) = totp::base32_decode(secret) else {
            return Ok(false);
        };
        let last = u64::try_from(last_step).unwrap_or(0);
        let Some(step) = totp::accepted_step(&key, code, totp::now_step(), last) else {
            return Ok(false);
        };
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let taken = sqlx::query(
            "UPDATE user_passwords SET totp_last_step = $2 WHERE name = $1 AND totp_last_step < $2",
        )
        .bind(name)
        .bind(step)
        .execute(self.db().pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Starts enrolling a second factor for `user`: a fresh secret, pending until a code from
    /// it is confirmed. The secret is returned once, to be put in an authenticator app.
    pub async fn begin_totp(&self, user: &str) -> Result<TotpEnrolment, GovernanceError> {
        let mut raw = [0u8; 20];
        getrandom::fill(&mut raw).map_err(|e| GovernanceError::Random(e.to_string()))?;
        let secret_base32 = totp::base32_encode(&raw);
        let updated = sqlx::query("UPDATE user_passwords SET totp_pending = $2 WHERE name = $1")
            .bind(user)
            .bind(&secret_base32)
            .execute(self.db().pool())
            .await?;
        if updated.rows_affected() == 0 {
            return Err(GovernanceError::Refused(
                "set a password before a second factor".into(),
            ));
        }
        let otpauth_uri = format!(
            "otpauth://totp/niji:{user}?secret={secret_base32}&issuer=niji&algorithm=SHA1&digits=6&period={}",
            totp::STEP_SECONDS
        );
        Ok(TotpEnrolment {
            secret_base32,
            otpauth_uri,
        })
    }

    /// Confirms the pending second factor with a code from it; from then on sign-in asks for
    /// a code.
    pub async fn confirm_totp(&self, user: &str, code: &str) -> Result<(), GovernanceError> {
        let pending: Option<Option<String>> =
            sqlx::query_scalar("SELECT totp_pending FROM user_passwords WHERE name = $1")
                .bind(user)
                .fetch_optional(self.db().pool())
                .await?;
        let Some(secret) = pending.flatten() else {
            return Err(GovernanceError::Refused(
                "no second factor is being set up".into(),
            ));
        };
        let key = totp::base32_decode(&secret).unwrap_or_default();
        let Some(step) = totp::accepted_step(&key, code, totp::now_step(), 0) else {
            let e = GovernanceError::Refused("the code does not match".into());
            return Err(self
                .refusal(
                    user,
                    serde_json::json!({"attempted": "confirm a second factor"}),
                    e,
                )
                .await);
        };
        sqlx::query("UPDATE user_passwords SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $2 WHERE name = $1")
            .bind(user)
            .bind(i64::try_from(step).unwrap_or(i64::MAX))
            .execute(self.db().pool())
            .await?;
        self.audited(
            user,
            "user.totp",
            &serde_json::json!({"user": user, "enabled": true}),
        )
        .await
    }

    /// Every account, suspended ones too (administrators).
    pub async fn accounts(&self, actor: &str) -> Result<Vec<Account>, GovernanceError> {
        self.may(actor, Action::ManageUsers, "list accounts")
            .await?;
        let rows = sqlx::query("SELECT u.name, u.role, u.organisation, u.disabled, CAST(CASE WHEN p.phc IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_password, CAST(CASE WHEN p.totp_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_totp FROM users u LEFT JOIN user_passwords p ON p.name = u.name ORDER BY u.name")
            .fetch_all(self.db().pool())
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Account {
                    name: r.get("name"),
                    role: UserRole::parse(r.get::<&str, _>("role"))?,
                    organisation: r.get("organisation"),
                    suspended: r.get::<i64, _>("disabled") != 0,
                    has_password: r.get::<i64, _>("has_password") != 0,
                    has_second_factor: r.get::<i64, _>("has_totp") != 0,
                })
            })
            .collect())
    }

    /// Creates an account from the portal (administrators): the user, their organisation and
    /// a first password. The API token is returned once, for programs.
    pub async fn create_account(
        &self,
        actor: &str,
        name: &str,
        role: UserRole,
        organisation: Option<&str>,
        password: &str,
    ) -> Result<String, GovernanceError> {
        self.may(actor, Action::ManageUsers, "create accounts")
            .await?;
        check_strength(name, password)?;
        let token = self.add_user(actor, name, role).await?;
        if let Some(org) = organisation.filter(|o| !o.is_empty()) {
            self.set_organisation(actor, name, org).await?;
        }
        self.set_password(actor, name, password).await?;
        Ok(token)
    }

    /// The organisations (administrators pick one for an account).
    pub async fn organisations(&self) -> Result<Vec<(String, String)>, GovernanceError> {
        let rows = sqlx::query("SELECT id, name FROM organisations ORDER BY id")
            .fetch_all(self.db().pool())
            .await?;
        Ok(rows.iter().map(|r| (r.get("id"), r.get("name"))).collect())
    }
}
