//! Standard datasets (決められたデータセット) on the platform side: the versions built (one per
//! data version, the same bytes for everyone), the organisations approved to request them, the
//! datasets opened to every approved organisation, and requests on a short form that one
//! committee member signs off. Building and delivering the files is the sandbox's.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::audited::write_audited;
use crate::{Action, GovernanceError, Platform};

/// Days a granted request may download from its decision.
pub const GRANT_DAYS: i32 = 365;
/// Longest purpose or public-interest text kept.
const MAX_TEXT: usize = 4000;
/// Shortest purpose or public-interest text: a form says something.
const MIN_TEXT: usize = 20;
/// Who builds a version when a delivery finds none for the current data (no signed-in name
/// has a ':').
pub const DATASET_BUILDER: &str = "niji:standard-datasets";

/// A version of a dataset as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DatasetVersion {
    pub name: String,
    /// SHA-256 over the definition, the disclosure policy, the source tables' content and the
    /// consent withdrawals: the data version.
    pub version: String,
    pub built_at: String,
    pub built_by: String,
    /// Rows in the file; groups resting on too few persons are not among them (how many there
    /// were is not told).
    pub rows_released: i64,
    /// Cells masked (null in the file, named in its `masked` column).
    pub cells_masked: i64,
    pub parquet_sha256: String,
    pub csv_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Submitted,
    Granted,
    Refused,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Submitted => "submitted",
            RequestState::Granted => "granted",
            RequestState::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<Self, GovernanceError> {
        match s {
            "submitted" => Ok(RequestState::Submitted),
            "granted" => Ok(RequestState::Granted),
            "refused" => Ok(RequestState::Refused),
            other => Err(GovernanceError::Refused(format!(
                "unknown request state {other:?}"
            ))),
        }
    }
}

/// The short form of the fast track.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetRequestForm {
    pub dataset: String,
    /// What the dataset is for (利用目的).
    pub purpose: String,
    /// Why it serves the public (公益性).
    pub public_interest: String,
    /// The pledge (誓約): no attempt to identify anyone, no linkage with other data, no
    /// passing on, publication only at the dataset's own level of aggregation.
    pub pledge: bool,
}

/// A request as kept.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetRequest {
    pub id: String,
    pub dataset: String,
    pub requester: String,
    pub organisation: String,
    pub purpose: String,
    pub public_interest: String,
    pub submitted_at: String,
    pub state: RequestState,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub reason: Option<String>,
    pub expires: Option<String>,
}

impl DatasetRequest {
    /// Whether it lets its requester download on `today` (`YYYY-MM-DD`).
    pub fn grants_on(&self, today: &str) -> bool {
        self.state == RequestState::Granted && self.expires.as_deref().is_some_and(|e| today <= e)
    }
}

const REQUEST_COLUMNS: &str = "id, dataset, requester, organisation, purpose, public_interest, submitted_at, state, decided_by, decided_at, reason, expires";

fn request_from(r: &sqlx::any::AnyRow) -> Result<DatasetRequest, GovernanceError> {
    Ok(DatasetRequest {
        id: r.get("id"),
        dataset: r.get("dataset"),
        requester: r.get("requester"),
        organisation: r.get("organisation"),
        purpose: r.get("purpose"),
        public_interest: r.get("public_interest"),
        submitted_at: r.get("submitted_at"),
        state: RequestState::parse(&r.get::<String, _>("state"))?,
        decided_by: r.get("decided_by"),
        decided_at: r.get("decided_at"),
        reason: r.get("reason"),
        expires: r.get("expires"),
    })
}

fn version_from(r: &sqlx::any::AnyRow) -> DatasetVersion {
    DatasetVersion {
        name: r.get("name"),
        version: r.get("version"),
        built_at: r.get("built_at"),
        built_by: r.get("built_by"),
        rows_released: r.get("rows_released"),
        cells_masked: r.get("cells_masked"),
        parquet_sha256: r.get("parquet_sha256"),
        csv_sha256: r.get("csv_sha256"),
    }
}

const VERSION_COLUMNS: &str =
    "name, version, built_at, built_by, rows_released, cells_masked, parquet_sha256, csv_sha256";

/// The last day a grant made on `today` may download.
fn grant_expiry(today: &str) -> Result<String, GovernanceError> {
    let day = niji_pseudo::date::parse_date(today)
        .map_err(|_| GovernanceError::Refused(format!("{today:?} is not a date")))?;
    Ok(
        niji_pseudo::CivilDate::from_days_since_epoch(day.days_since_epoch() + GRANT_DAYS)
            .to_string(),
    )
}

/// What a requested dataset is, as the sandbox's definitions say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// No such dataset.
    Nothing,
    /// A table of counts: an opening may grant it without a sign-off.
    Counts,
    /// An anonymised record-level extract: every request is signed off.
    Records,
}

impl Platform {
    /// Refused unless `actor` may build and open datasets: checked before anything is read.
    pub async fn may_manage_datasets(&self, actor: &str) -> Result<(), GovernanceError> {
        if actor == DATASET_BUILDER {
            return Ok(());
        }
        self.may(actor, Action::ManageDatasets, "manage standard datasets")
            .await
    }

    /// The version built for `name` at data version `version`, if any.
    pub async fn dataset_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<DatasetVersion>, GovernanceError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE name = $1 AND version = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(version)
            .fetch_optional(self.db().pool())
            .await?;
        Ok(row.as_ref().map(version_from))
    }

    /// Every version of `name`, oldest first.
    pub async fn dataset_versions(
        &self,
        name: &str,
    ) -> Result<Vec<DatasetVersion>, GovernanceError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE name = $1 ORDER BY built_at, version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_all(self.db().pool())
            .await?;
        Ok(rows.iter().map(version_from).collect())
    }

    /// Records a built version; the first record of a version stands (a build of the same
    /// version gives the same bytes, which the caller checks against it).
    pub async fn record_dataset_version(
        &self,
        built: &DatasetVersion,
    ) -> Result<DatasetVersion, GovernanceError> {
        self.may_manage_datasets(&built.built_by).await?;
        // The row and its audit entry are committed together: a process killed between two
        // writes would leave a version on record whose build was never audited, and the next
        // build, finding it, would not build (or audit) it again.
        write_audited(
            self.audit(),
            (&built.built_by, "dataset.build", built),
            "INSERT INTO dataset_versions (name, version, built_at, built_by, rows_released, cells_masked, parquet_sha256, csv_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name, version) DO NOTHING",
            vec![
                built.name.as_str().into(),
                built.version.as_str().into(),
                built.built_at.as_str().into(),
                built.built_by.as_str().into(),
                built.rows_released.into(),
                built.cells_masked.into(),
                built.parquet_sha256.as_str().into(),
                built.csv_sha256.as_str().into(),
            ],
        )
        .await?;
        // The first record of a version stands, whoever wrote it.
        self.dataset_version(&built.name, &built.version)
            .await?
            .ok_or_else(|| GovernanceError::NotFound(format!("{} {}", built.name, built.version)))
    }

    /// Opens `name` to every approved organisation: their requests are granted without a
    /// sign-off.
    pub async fn open_dataset(&self, actor: &str, name: &str) -> Result<(), GovernanceError> {
        self.may_manage_datasets(actor).await?;
        let now = niji_audit::now_rfc3339();
        let mut tx = self.db().db.begin_write("dataset_openings").await?;
        let known: Option<String> =
            sqlx::query_scalar("SELECT name FROM dataset_openings WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if known.is_some() {
            return Err(GovernanceError::Exists(format!("the opening of {name}")));
        }
        sqlx::query(
            "INSERT INTO dataset_openings (name, opened_by, opened_at) VALUES ($1, $2, $3)",
        )
        .bind(name)
        .bind(actor)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audited(
            actor,
            "dataset.open",
            &serde_json::json!({ "dataset": name }),
        )
        .await
    }

    pub async fn dataset_is_open(&self, name: &str) -> Result<bool, GovernanceError> {
        let known: Option<String> =
            sqlx::query_scalar("SELECT name FROM dataset_openings WHERE name = $1")
                .bind(name)
                .fetch_optional(self.db().pool())
                .await?;
        Ok(known.is_some())
    }

    /// Approves `organisation` to request standard datasets.
    pub async fn approve_dataset_organisation(
        &self,
        actor: &str,
        organisation: &str,
    ) -> Result<(), GovernanceError> {
        self.may_manage_datasets(actor).await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1")
                .bind(organisation)
                .fetch_optional(self.db().pool())
                .await?;
        if exists.is_none() {
            return Err(GovernanceError::NotFound(format!(
                "organisation {organisation}"
            )));
        }
        let mut tx = self.db().db.begin_write("dataset_organisations").await?;
        let known: Option<String> = sqlx::query_scalar(
            "SELECT organisation FROM dataset_organisations WHERE organisation = $1",
        )
        .bind(organisation)
        .fetch_optional(&mut *tx)
        .await?;
        if known.is_some() {
            return Err(GovernanceError::Exists(format!(
                "the approval of {organisation}"
            )));
        }
        sqlx::query("INSERT INTO dataset_organisations (organisation, approved_by, approved_at) VALUES ($1, $2, $3)")
            .bind(organisation)
            .bind(actor)
            .bind(niji_audit::now_rfc3339())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audited(
            actor,
            "dataset.organisation_approved",
            &serde_json::json!({ "organisation": organisation }),
        )
        .await
    }

    async fn organisation_approved(&self, organisation: &str) -> Result<bool, GovernanceError> {
        let known: Option<String> = sqlx::query_scalar(
            "SELECT organisation FROM dataset_organisations WHERE organisation = $1",
        )
        .bind(organisation)
        .fetch_optional(self.db().pool())
        .await?;
        Ok(known.is_some())
    }

    /// Files a request on the short form. `offered` says what the dataset is (the
    /// definitions are the sandbox's). An approved organisation's request for an open table of
    /// counts is granted at once; any other, and every request for records, waits for one
    /// committee member's sign-off.
    pub async fn request_dataset(
        &self,
        actor: &str,
        form: &DatasetRequestForm,
        offered: Offered,
    ) -> Result<DatasetRequest, GovernanceError> {
        self.may(actor, Action::RequestDatasets, "request standard datasets")
            .await?;
        let mut problems = crate::spec::Problems::default();
        for (field, text) in [
            ("purpose", &form.purpose),
            ("public_interest", &form.public_interest),
        ] {
            let n = text.trim().chars().count();
            if n < MIN_TEXT {
                problems.add(field, format!("say in at least {MIN_TEXT} characters"));
            } else if n > MAX_TEXT {
                problems.add(field, format!("at most {MAX_TEXT} characters"));
            }
        }
        if !form.pledge {
            problems.add("pledge", "the pledge must be given");
        }
        if offered == Offered::Nothing {
            problems.add("dataset", format!("no standard dataset {:?}", form.dataset));
        }
        if !problems.0.is_empty() {
            return Err(GovernanceError::Invalid(problems.0));
        }
        let organisation = self.db().organisation_of(actor).await?.ok_or_else(|| {
            GovernanceError::Refused(
                "a request is made for an organisation; you belong to none".into(),
            )
        })?;
        let approved = self.organisation_approved(&organisation).await?;
        // Records are never granted without a sign-off, whatever an opening says.
        let open = offered == Offered::Counts && self.dataset_is_open(&form.dataset).await?;
        let now = niji_audit::now_rfc3339();
        let today = crate::today();
        let mut tx = self.db().db.begin_write("dataset_requests").await?;
        let number: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM dataset_requests")
                .fetch_one(&mut *tx)
                .await?;
        let id = format!("D{number:06}");
        let (state, decided_by, decided_at, expires) = if open && approved {
            (
                RequestState::Granted,
                Some("niji:open-dataset".to_string()),
                Some(now.clone()),
                Some(grant_expiry(&today)?),
            )
        } else {
            (RequestState::Submitted, None, None, None)
        };
        sqlx::query(
            "INSERT INTO dataset_requests (id, number, dataset, requester, organisation, purpose, public_interest, submitted_at, state, decided_by, decided_at, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(number)
        .bind(&form.dataset)
        .bind(actor)
        .bind(&organisation)
        .bind(form.purpose.trim())
        .bind(form.public_interest.trim())
        .bind(&now)
        .bind(state.as_str())
        .bind(&decided_by)
        .bind(&decided_at)
        .bind(&expires)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audited(
            actor,
            "dataset.request",
            &serde_json::json!({
                "request": id, "dataset": form.dataset, "organisation": organisation,
                "state": state.as_str(),
            }),
        )
        .await?;
        self.dataset_request(&id).await
    }

    pub async fn dataset_request(&self, id: &str) -> Result<DatasetRequest, GovernanceError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM dataset_requests WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| GovernanceError::NotFound(format!("dataset request {id}")))?;
        request_from(&row)
    }

    /// Requests `actor` may read: their own; every request for those who sign off or manage.
    pub async fn dataset_requests(
        &self,
        actor: &str,
    ) -> Result<Vec<DatasetRequest>, GovernanceError> {
        let all = self.allows(actor, "", Action::SignOffDatasets).await
            || self.allows(actor, "", Action::ManageDatasets).await;
        let sql = if all {
            format!("SELECT {REQUEST_COLUMNS} FROM dataset_requests ORDER BY number")
        } else {
            format!(
                "SELECT {REQUEST_COLUMNS} FROM dataset_requests WHERE requester = $1 ORDER BY number"
            )
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if !all {
            query = query.bind(actor);
        }
        let rows = query.fetch_all(self.db().pool()).await?;
        rows.iter().map(request_from).collect()
    }

    /// One committee member's sign-off (or refusal, which says why). The requester and anyone
    /// of the requester's organisation are recused, and a refused attempt is logged.
    pub async fn sign_off_dataset_request(
        &self,
        actor: &str,
        id: &str,
        grant: bool,
        reason: &str,
    ) -> Result<DatasetRequest, GovernanceError> {
        self.may(actor, Action::SignOffDatasets, "sign off dataset requests")
            .await?;
        let request = self.dataset_request(id).await?;
        let mine = self.db().organisation_of(actor).await?;
        if actor == request.requester || mine.as_deref() == Some(request.organisation.as_str()) {
            let e = GovernanceError::Denied(format!(
                "{actor} made {id} or is of its organisation ({}), and is recused",
                request.organisation
            ));
            let detail = serde_json::json!({"attempted": "sign off", "request": id});
            return Err(self.refusal(actor, detail, e).await);
        }
        if request.state != RequestState::Submitted {
            return Err(GovernanceError::Refused(format!(
                "{id} is already {}",
                request.state.as_str()
            )));
        }
        let reason = reason.trim();
        if !grant && reason.is_empty() {
            return Err(GovernanceError::Refused("a refusal says why".into()));
        }
        let (state, expires) = if grant {
            (RequestState::Granted, Some(grant_expiry(&crate::today())?))
        } else {
            (RequestState::Refused, None)
        };
        let done = sqlx::query(
            "UPDATE dataset_requests SET state = $2, decided_by = $3, decided_at = $4, reason = $5, expires = $6 WHERE id = $1 AND state = 'submitted'",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(actor)
        .bind(niji_audit::now_rfc3339())
        .bind((!reason.is_empty()).then_some(reason))
        .bind(&expires)
        .execute(self.db().pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(GovernanceError::Refused(format!(
                "{id} was decided meanwhile"
            )));
        }
        self.audited(
            actor,
            "dataset.signoff",
            &serde_json::json!({"request": id, "dataset": request.dataset, "state": state.as_str()}),
        )
        .await?;
        self.dataset_request(id).await
    }

    /// The request that lets `actor` download `dataset` today, or one refusal that does not
    /// say whether the dataset exists or why there is no grant.
    pub async fn may_download_dataset(
        &self,
        actor: &str,
        dataset: &str,
    ) -> Result<DatasetRequest, GovernanceError> {
        self.may(
            actor,
            Action::DownloadDatasets,
            "download standard datasets",
        )
        .await?;
        let today = crate::today();
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM dataset_requests WHERE requester = $1 AND dataset = $2 AND state = 'granted' ORDER BY number DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(actor)
            .bind(dataset)
            .fetch_all(self.db().pool())
            .await?;
        for row in &rows {
            let request = request_from(row)?;
            if request.grants_on(&today) {
                return Ok(request);
            }
        }
        let e = GovernanceError::Denied(format!(
            "downloading {dataset}: no granted, unexpired request of yours covers it"
        ));
        let detail = serde_json::json!({"attempted": "download", "dataset": dataset});
        Err(self.refusal(actor, detail, e).await)
    }

    /// Audits a delivery: who, which dataset and version, which request, the format and the
    /// digest of the bytes handed over.
    pub async fn record_dataset_delivery(
        &self,
        actor: &str,
        request: &DatasetRequest,
        version: &DatasetVersion,
        format: &str,
        sha256: &str,
    ) -> Result<(), GovernanceError> {
        self.audited(
            actor,
            "dataset.deliver",
            &serde_json::json!({
                "request": request.id, "organisation": request.organisation,
                "dataset": version.name, "version": version.version,
                "format": format, "sha256": sha256,
            }),
        )
        .await
    }
}
