//! Application review end to end on the platform service, on SQLite and on PostgreSQL: from a
//! draft to a live project, and every refusal from the side of whoever tries to go around it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod alerts;
mod applications;
mod consent;
mod datasets;
mod refusals;
mod scripts;

use std::collections::BTreeMap;
use std::path::PathBuf;

use niji_audit::DatabaseUrl;
use niji_catalog::Catalog;
use niji_governance::{ApplicationForm, Platform, ReviewVote, UserRole};
use niji_pseudo::CustodianKey;
use niji_testdb::TestDb;

fn repo() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../..")
}

/// A platform with a committee: alice (lead) and bob applying from u-tokyo; carol (kyoto-u),
/// dave (u-tokyo: recused from alice's applications) and erin (mhlw) on the committee; frank
/// (mhlw) chairs; mallory is a researcher from kyoto-u; cathy is the custodian.
#[derive(Debug)]
pub struct Committee {
    pub platform: Platform,
    pub catalog: Catalog,
    pub db: TestDb,
}

impl Committee {
    pub async fn new(db: TestDb) -> Self {
        let url = DatabaseUrl::parse(db.url()).unwrap();
        let key = CustodianKey::from_bytes([3; 32]);
        let platform = Platform::open(
            &url,
            &db.dir().join("audit.anchor"),
            &key,
            &repo().join("policies"),
        )
        .await
        .unwrap();
        for (name, role) in [
            ("root", UserRole::Admin),
            ("cathy", UserRole::Custodian),
            ("alice", UserRole::Researcher),
            ("bob", UserRole::Researcher),
            ("carol", UserRole::Committee),
            ("dave", UserRole::Committee),
            ("erin", UserRole::Committee),
            ("frank", UserRole::Chair),
            ("mallory", UserRole::Researcher),
        ] {
            platform.add_user("setup", name, role).await.unwrap();
        }
        for (id, name) in [
            ("u-tokyo", "東京大学"),
            ("kyoto-u", "京都大学"),
            ("mhlw", "厚生労働省"),
        ] {
            platform.add_organisation("root", id, name).await.unwrap();
        }
        for (user, org) in [
            ("alice", "u-tokyo"),
            ("bob", "u-tokyo"),
            ("dave", "u-tokyo"),
            ("carol", "kyoto-u"),
            ("mallory", "kyoto-u"),
            ("erin", "mhlw"),
            ("frank", "mhlw"),
        ] {
            platform.set_organisation("root", user, org).await.unwrap();
        }
        let catalog = Catalog::load(&repo().join("catalog")).unwrap();
        Self {
            platform,
            catalog,
            db,
        }
    }

    /// The 2割負担 study's form (NDB + 介護DB linked), as in `sandbox/examples/application.toml`.
    pub fn form() -> ApplicationForm {
        let text =
            std::fs::read_to_string(repo().join("sandbox/examples/application.toml")).unwrap();
        ApplicationForm::from_toml(&text).unwrap()
    }

    /// alice's application, submitted and assigned to carol (NDB), dave (介護DB, recused as
    /// her colleague) and erin (介護DB).
    pub async fn submitted_and_assigned(&self) -> String {
        let p = &self.platform;
        let id = p.draft_application("alice", &Self::form()).await.unwrap();
        p.submit_application("alice", &id, &self.catalog)
            .await
            .unwrap();
        assert!(
            p.assign_reviewer("frank", &id, "carol", &["ndb".into()])
                .await
                .unwrap()
                .is_none()
        );
        let recused = p
            .assign_reviewer("frank", &id, "dave", &["kaigo".into()])
            .await
            .unwrap();
        assert!(recused.unwrap().contains("u-tokyo"));
        assert!(
            p.assign_reviewer("frank", &id, "erin", &["kaigo".into()])
                .await
                .unwrap()
                .is_none()
        );
        id
    }

    /// carol and erin vote (the quorum of two).
    pub async fn quorum_votes(&self, id: &str) {
        let p = &self.platform;
        p.vote_on_application("carol", id, ReviewVote::Approve, &BTreeMap::new())
            .await
            .unwrap();
        let comments = comments(&[(
            "data",
            "所得区分は必要最小限に。income_class は残してよい。",
        )]);
        p.vote_on_application("erin", id, ReviewVote::ApproveWithConditions, &comments)
            .await
            .unwrap();
    }

    /// alice's application approved without conditions and accepted: copay-2022 is live.
    pub async fn live_project(&self) -> String {
        let p = &self.platform;
        let id = self.submitted_and_assigned().await;
        self.quorum_votes(&id).await;
        let ok = niji_governance::Conditions::default();
        let approved = niji_governance::DecisionOutcome::Approved;
        p.decide_application("frank", &id, approved, ok, "ok", &self.catalog)
            .await
            .unwrap();
        p.accept_decision("alice", &id, &self.catalog)
            .await
            .unwrap();
        id
    }

    /// The audit entries of one kind, by actor.
    pub async fn audited(&self, action: &str) -> Vec<(String, String)> {
        self.platform
            .audit()
            .recent(10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action)
            .map(|e| (e.actor, e.detail))
            .collect()
    }
}

pub fn comments(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
