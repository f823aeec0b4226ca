//! One write to a platform table committed in the transaction of its audit entry: both or
//! neither, so that a process killed between two writes cannot leave a change unaudited (or
//! an entry without its change). Votes, decisions on outputs and dataset versions use it.

use serde::Serialize;

use crate::GovernanceError;

/// A parameter of the write.
#[derive(Debug)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(i64),
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Text(Some(s.to_string()))
    }
}

impl From<Option<String>> for Param {
    fn from(s: Option<String>) -> Self {
        Param::Text(s)
    }
}

impl From<i64> for Param {
    fn from(n: i64) -> Self {
        Param::Int(n)
    }
}

/// Runs `sql` with `params` in the transaction of the audit entry `(actor, action, detail)`.
/// Whether it changed a row; when it did not, nothing is appended.
pub(crate) async fn write_audited(
    audit: &niji_audit::AuditLog,
    (actor, action, detail): (&str, &str, &impl Serialize),
    sql: &'static str,
    params: Vec<Param>,
) -> Result<bool, GovernanceError> {
    let appended = audit
        .append_with(actor, action, detail, move |c| {
            Box::pin(async move {
                let mut query = sqlx::query(sql);
                for p in params {
                    query = match p {
                        Param::Text(t) => query.bind(t),
                        Param::Int(n) => query.bind(n),
                    };
                }
                let done = query.execute(c).await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await?;
    Ok(appended.is_some())
}
