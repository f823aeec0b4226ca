//! Standard dataset requests on both backends: the fast track (one sign-off, or an open
//! dataset for an approved organisation), recusal, grants that are the requester's own, the
//! versions recorded once, and a dataset's released sets kept under its own scope.

use niji_governance::{
    DATASET_BUILDER, DatasetRequestForm, DatasetVersion, Offered, RequestState, UserRole,
};
use niji_testdb::TestDb;

use crate::Committee;

fn form(dataset: &str) -> DatasetRequestForm {
    DatasetRequestForm {
        dataset: dataset.into(),
        purpose: "Trial feasibility: patient numbers by prefecture".into(),
        public_interest: "A treatment for a disease with none approved".into(),
        pledge: true,
    }
}

async fn datasets_are_granted_on_the_fast_track_and_only_to_the_requester(db: TestDb) {
    let c = Committee::new(db).await;
    let p = &c.platform;
    p.add_organisation("root", "pharma-a", "製薬A")
        .await
        .unwrap();
    p.add_user("setup", "paula", UserRole::Analyst)
        .await
        .unwrap();
    p.set_organisation("root", "paula", "pharma-a")
        .await
        .unwrap();
    p.add_user("setup", "petra", UserRole::Analyst)
        .await
        .unwrap();
    p.set_organisation("root", "petra", "pharma-a")
        .await
        .unwrap();

    // One sign-off by a member from another organisation.
    let r = p
        .request_dataset("paula", &form("patients"), Offered::Counts)
        .await
        .unwrap();
    assert_eq!(
        (r.id.as_str(), r.state),
        ("D000001", RequestState::Submitted)
    );
    assert!(p.may_download_dataset("paula", "patients").await.is_err());
    assert!(
        p.sign_off_dataset_request("alice", &r.id, true, "")
            .await
            .is_err()
    );
    assert!(
        p.sign_off_dataset_request("carol", &r.id, false, " ")
            .await
            .is_err(),
        "a refusal says why"
    );
    let r = p
        .sign_off_dataset_request("carol", &r.id, true, "")
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Granted);
    assert!(r.expires.is_some());
    assert!(
        p.sign_off_dataset_request("erin", &r.id, false, "late")
            .await
            .is_err(),
        "decided once"
    );
    assert_eq!(
        p.may_download_dataset("paula", "patients")
            .await
            .unwrap()
            .id,
        r.id
    );
    // The grant is paula's, not her colleague's, and for that dataset only.
    assert!(p.may_download_dataset("petra", "patients").await.is_err());
    assert!(p.may_download_dataset("paula", "incidence").await.is_err());
    // Researchers and committee members may not download (no role), nor may an analyst build.
    assert!(p.may_download_dataset("carol", "patients").await.is_err());
    assert!(p.may_manage_datasets("paula").await.is_err());
    assert!(p.may_manage_datasets("cathy").await.is_ok());
    // Requests are read by their requester, and by those who sign off.
    assert_eq!(p.dataset_requests("petra").await.unwrap().len(), 0);
    assert_eq!(p.dataset_requests("carol").await.unwrap().len(), 1);

    // Open to approved organisations: granted at once.
    p.open_dataset("cathy", "incidence").await.unwrap();
    assert!(
        p.open_dataset("cathy", "incidence").await.is_err(),
        "opened once"
    );
    let r = p
        .request_dataset("petra", &form("incidence"), Offered::Counts)
        .await
        .unwrap();
    assert_eq!(
        r.state,
        RequestState::Submitted,
        "pharma-a is not approved yet"
    );
    p.approve_dataset_organisation("cathy", "pharma-a")
        .await
        .unwrap();
    let r = p
        .request_dataset("petra", &form("incidence"), Offered::Counts)
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Granted);
    // Records are signed off whatever an opening says: an extract opened here by a direct
    // call is still not granted at once.
    p.open_dataset("cathy", "records").await.unwrap();
    let r = p
        .request_dataset("petra", &form("records"), Offered::Records)
        .await
        .unwrap();
    assert_eq!(r.state, RequestState::Submitted);
    assert!(
        p.approve_dataset_organisation("cathy", "no-such-org")
            .await
            .is_err()
    );

    // A researcher may request too, for their organisation; one without an organisation not.
    p.add_user("setup", "nobody", UserRole::Analyst)
        .await
        .unwrap();
    let e = p
        .request_dataset("nobody", &form("patients"), Offered::Counts)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("organisation"), "{e}");
    assert!(
        p.request_dataset("alice", &form("patients"), Offered::Counts)
            .await
            .is_ok()
    );
    let e = p
        .request_dataset("paula", &form("patients"), Offered::Nothing)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("dataset"), "{e}");

    // A version is recorded once; a second record of it keeps the first.
    let built = DatasetVersion {
        name: "patients".into(),
        version: "ab".repeat(32),
        built_at: niji_audit::now_rfc3339(),
        built_by: DATASET_BUILDER.into(),
        rows_released: 10,
        cells_masked: 2,
        parquet_sha256: "00".repeat(32),
        csv_sha256: "11".repeat(32),
    };
    assert_eq!(p.record_dataset_version(&built).await.unwrap(), built);
    let mut again = built.clone();
    again.rows_released = 99;
    assert_eq!(p.record_dataset_version(&again).await.unwrap(), built);
    let mut by_analyst = built.clone();
    by_analyst.version = "cd".repeat(32);
    by_analyst.built_by = "paula".into();
    assert!(p.record_dataset_version(&by_analyst).await.is_err());
    assert_eq!(p.dataset_versions("patients").await.unwrap(), vec![built]);

    // Released sets under a dataset's scope (no project of that name).
    let last = p
        .released_sets()
        .record_released("standard:patients", "q1", &[vec![1, 2, 3]], 0)
        .await
        .unwrap();
    assert!(last.is_some());
    let kept = p
        .released_sets()
        .released_since("standard:patients", 0)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(c.audited("dataset.signoff").await.len(), 1);
    assert!(c.audited("refused").await.len() >= 3);
}

niji_testdb::on_both_backends!(datasets_are_granted_on_the_fast_track_and_only_to_the_requester);
