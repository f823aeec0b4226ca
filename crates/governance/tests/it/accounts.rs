//! Portal accounts on SQLite and on PostgreSQL: passwords that are hashed and checked, a second
//! factor whose codes count once, lockout after guessing, sessions that end, and the
//! administrator's powers kept from everyone else.

use niji_governance::{GovernanceError, LOCK_AFTER, totp_code};
use niji_testdb::TestDb;

use super::Committee;

const SHELL: &str = "custodian:test";
const PASSWORD: &str = "a long enough password";

async fn passwords_second_factors_lockout_and_sessions(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    assert!(matches!(
        p.set_password(SHELL, "alice", "short").await,
        Err(GovernanceError::Refused(_))
    ));
    assert!(matches!(
        p.set_password(SHELL, "alice", "alice-alice-alice").await,
        Err(GovernanceError::Refused(_))
    ));
    p.set_password(SHELL, "alice", PASSWORD).await.unwrap();
    // Nobody else sets alice's password: a researcher is refused, and it is logged.
    assert!(matches!(
        p.set_password("bob", "alice", "bob's chosen password")
            .await,
        Err(GovernanceError::Denied(_))
    ));
    let stored: String = sqlx::query_scalar("SELECT phc FROM user_passwords WHERE name = 'alice'")
        .fetch_one(p.db().database().pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(PASSWORD));

    let alice = p
        .sign_in_with_password("alice", PASSWORD, None, "portal")
        .await
        .unwrap();
    assert_eq!(alice.name, "alice");
    assert!(matches!(
        p.sign_in_with_password("alice", "not the password", None, "portal")
            .await,
        Err(GovernanceError::Unauthenticated)
    ));
    assert!(
        p.sign_in_with_password("nobody", PASSWORD, None, "portal")
            .await
            .is_err()
    );

    // A second factor: pending until a code confirms it, then asked for at every sign-in.
    let enrolment = p.begin_totp("alice").await.unwrap();
    assert!(
        p.sign_in_with_password("alice", PASSWORD, None, "portal")
            .await
            .is_ok(),
        "not yet on"
    );
    let code = totp_code(&enrolment.secret_base32).unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert!(p.confirm_totp("alice", &wrong).await.is_err());
    p.confirm_totp("alice", &code).await.unwrap();
    assert!(
        p.sign_in_with_password("alice", PASSWORD, None, "portal")
            .await
            .is_err(),
        "a code is needed now"
    );
    assert!(
        p.sign_in_with_password("alice", PASSWORD, Some(&code), "portal")
            .await
            .is_err(),
        "the confirming code was used"
    );

    // Sessions: found while live, gone after sign-out and after a new password.
    let (token, session) = p.open_web_session(&alice).await.unwrap();
    assert_eq!(
        p.web_session(&token).await.unwrap().unwrap().csrf,
        session.csrf
    );
    assert!(p.web_session("nijiw_forged").await.unwrap().is_none());
    p.end_web_session(&token, "portal").await.unwrap();
    assert!(p.web_session(&token).await.unwrap().is_none());
    let (token, _) = p.open_web_session(&alice).await.unwrap();
    p.change_password("alice", PASSWORD, "another long password")
        .await
        .unwrap();
    assert!(
        p.web_session(&token).await.unwrap().is_none(),
        "a new password ends every session"
    );

    // Guessing locks the name, even for the right password.
    p.set_password(SHELL, "bob", PASSWORD).await.unwrap();
    for _ in 0..LOCK_AFTER {
        assert!(
            p.sign_in_with_password("bob", "guess guess guess", None, "portal")
                .await
                .is_err()
        );
    }
    assert!(matches!(
        p.sign_in_with_password("bob", PASSWORD, None, "portal").await,
        Err(GovernanceError::Refused(m)) if m.contains("too many")
    ));
    let signins = c.audited("signin").await;
    assert!(
        signins
            .iter()
            .any(|(who, d)| who == "bob" && d.contains("locked"))
    );
    assert!(
        signins
            .iter()
            .all(|(_, d)| !d.contains("guess") && !d.contains("password"))
    );

    // The administrator's list is the administrator's.
    assert!(matches!(
        p.accounts("alice").await,
        Err(GovernanceError::Denied(_))
    ));
    assert!(
        p.accounts(SHELL)
            .await
            .unwrap()
            .iter()
            .any(|a| a.name == "alice" && a.has_password && a.has_second_factor)
    );
}

niji_testdb::on_both_backends!(passwords_second_factors_lockout_and_sessions);
