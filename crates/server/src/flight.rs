//! The Arrow Flight SQL endpoint: sign-in by the handshake (HTTP Basic with user and API
//! token, answered with a bearer session), statements through the sandbox chokepoint. The
//! project and mode come from the `x-niji-project` and `x-niji-mode` call headers (ADBC:
//! `adbc.flight.sql.rpc.call_header.x-niji-project`). A dummy result is kept for one `DoGet`
//! by the user who asked for it. A held result is an answer like any other: its FlightInfo
//! has no endpoint, its schema's metadata says `niji.status = held` with the message, and its
//! app_metadata is the outcome. A refused or failed outcome is an error status from the one
//! mapping in `status`. With `x-niji-mode: dataset` the statement names a standard dataset,
//! delivered to a user whose granted request covers it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    Any, CommandGetSqlInfo, CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use base64::Engine as _;
use futures::{Stream, TryStreamExt};
use niji_sandbox::{DatasetFormat, Mode, QueryRequest, Scope, Status as OutcomeStatus};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::AppState;
use crate::status::{ServerError, grpc_failure};

/// Results wait this long for their `DoGet`.
const RESULT_TTL: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Pending {
    user: String,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    at: Instant,
}

#[derive(Clone)]
pub struct NijiFlightSql {
    state: Arc<AppState>,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    sql_info: Arc<SqlInfoData>,
}

impl std::fmt::Debug for NijiFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NijiFlightSql").finish_non_exhaustive()
    }
}

pub fn service(state: Arc<AppState>) -> FlightServiceServer<NijiFlightSql> {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "niji Visiting environment");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    let sql_info = Arc::new(
        info.build()
            .unwrap_or_else(|_| SqlInfoDataBuilder::new().build().expect("empty sql info")),
    );
    FlightServiceServer::new(NijiFlightSql {
        state,
        pending: Arc::new(Mutex::new(HashMap::new())),
        sql_info,
    })
}

fn header<'a, T>(req: &'a Request<T>, name: &str) -> Option<&'a str> {
    req.metadata().get(name).and_then(|v| v.to_str().ok())
}

impl NijiFlightSql {
    async fn user<T>(&self, req: &Request<T>) -> Result<String, Status> {
        let token = header(req, "authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::from(ServerError::Unauthenticated))?;
        Ok(self.state.signed_in(token.trim()).await?)
    }

    /// Keeps `batches` for one `DoGet` by `user` and answers with its ticket.
    fn keep_for_do_get(
        &self,
        user: String,
        handle: String,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        {
            let mut pending = self.pending();
            pending.retain(|_, p| p.at.elapsed() < RESULT_TTL);
            pending.insert(
                handle.clone(),
                Pending {
                    user,
                    schema: schema.clone(),
                    batches,
                    at: Instant::now(),
                },
            );
        }
        let ticket = TicketStatementQuery {
            statement_handle: handle.into_bytes().into(),
        };
        flight_info(schema, &ticket.as_any(), descriptor)
    }

    /// A standard dataset over Flight (`x-niji-mode: dataset`, the statement its name): the
    /// rows of its current version, for a user whose granted request covers it. Audited as a
    /// delivery like a file.
    async fn dataset_info(
        &self,
        user: String,
        name: &str,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let name = name.trim();
        let delivery = self
            .state
            .visiting
            .deliver_dataset(&user, name, DatasetFormat::Flight)
            .instrument(tracing::info_span!("flight dataset", %user, dataset = name))
            .await
            .map_err(|e| Status::from(ServerError::from(e)))?;
        let (schema, batches) = delivery
            .batches()
            .map_err(|e| Status::from(ServerError::from(e)))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let metadata = serde_json::json!({
            "dataset": name, "version": delivery.version.version,
            "request": delivery.request, "sha256": delivery.sha256,
        });
        // A handle of its own, as for a query: two users' deliveries never share one.
        let handle = niji_sandbox::new_query_id();
        let info = self
            .keep_for_do_get(user, handle, &schema, batches, request.into_inner())?
            .with_total_records(rows as i64)
            .with_app_metadata(metadata.to_string());
        Ok(Response::new(info))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// FlightInfo for a result fetched with one ticket (`command` packed as the ticket).
fn flight_info(
    schema: &arrow::datatypes::Schema,
    command: &Any,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket {
        ticket: command.encode_to_vec().into(),
    });
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|_| Status::internal("internal error"))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor))
}

/// A held result's FlightInfo: no endpoint to fetch, and the outcome in the schema's metadata
/// (which clients such as ADBC keep on the empty result) and in app_metadata.
fn held_info(
    outcome: &niji_sandbox::QueryOutcome,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let fields = outcome
        .schema
        .as_ref()
        .map(|s| s.fields().clone())
        .unwrap_or_default();
    let metadata = HashMap::from([
        ("niji.status".to_string(), "held".to_string()),
        (
            "niji.message".to_string(),
            format!("{} (query {})", outcome.message, outcome.query_id),
        ),
    ]);
    let schema = arrow::datatypes::Schema::new_with_metadata(fields, metadata);
    let info = FlightInfo::new()
        .try_with_schema(&schema)
        .map_err(|_| Status::internal("internal error"))?
        .with_descriptor(descriptor)
        .with_total_records(-1)
        .with_app_metadata(outcome.summary_json().to_string());
    Ok(Response::new(info))
}

/// Streams batches as Flight data.
fn encode(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Response<<NijiFlightSql as FlightService>::DoGetStream> {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter(batches.into_iter().map(Ok)))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightSqlService for NijiFlightSql {
    type FlightService = NijiFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<BoxStream<HandshakeResponse>>, Status> {
        let bad = || Status::unauthenticated("sign in with HTTP Basic: user name and API token");
        let basic = header(&request, "authorization")
            .and_then(|v| v.strip_prefix("Basic "))
            .ok_or_else(bad)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, token) = text.split_once(':').ok_or_else(bad)?;
        let user = self
            .state
            .visiting
            .platform()
            .sign_in(user, token, "flight")
            .await
            .map_err(|e| Status::from(ServerError::from(e)))?;
        let session = self
            .state
            .sessions
            .open(&user.name)
            .map_err(|e| Status::from(ServerError::Session(e)))?;
        let bearer = MetadataValue::try_from(format!("Bearer {session}"))
            .map_err(|_| Status::internal("could not open a session"))?;
        let output = futures::stream::iter(vec![Ok(HandshakeResponse {
            protocol_version: 0,
            payload: session.into_bytes().into(),
        })]);
        let mut response: Response<BoxStream<HandshakeResponse>> = Response::new(Box::pin(output));
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let user = self.user(&request).await?;
        let mode = match header(&request, "x-niji-mode").unwrap_or("dummy") {
            "dummy" => Mode::Dummy,
            "real" => Mode::Real,
            "dataset" => return self.dataset_info(user, &query.query, request).await,
            _ => {
                return Err(Status::invalid_argument(
                    "x-niji-mode is dummy, real or dataset",
                ));
            }
        };
        let project = header(&request, "x-niji-project")
            .ok_or_else(|| Status::invalid_argument("set the x-niji-project header"))?
            .to_string();
        let span = tracing::info_span!("flight", %user, %project);
        let outcome = self
            .state
            .visiting
            .query(&QueryRequest {
                user: user.clone(),
                scope: Scope::project(project),
                mode,
                sql: query.query,
                via: "flight",
            })
            .instrument(span)
            .await;
        if let Some(failure) = grpc_failure(&outcome) {
            return Err(failure);
        }
        // Released results stream with their masked cells null; the FlightInfo's app_metadata
        // says which and why (the outcome's JSON without its rows).
        if outcome.status == OutcomeStatus::Held {
            return held_info(&outcome, request.into_inner());
        }
        let schema = outcome
            .schema
            .clone()
            .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
        let metadata = outcome.summary_json().to_string();
        let info = self
            .keep_for_do_get(
                user,
                outcome.query_id.clone(),
                &schema,
                outcome.batches,
                request.into_inner(),
            )?
            .with_total_records(outcome.row_count.map_or(-1, |n| n as i64))
            .with_app_metadata(metadata);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let user = self.user(&request).await?;
        let handle = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("bad ticket"))?;
        let result = {
            let mut pending = self.pending();
            match pending.get(&handle) {
                // Another user's ticket is treated as unknown.
                Some(p) if p.user == user => pending.remove(&handle),
                _ => None,
            }
        }
        .ok_or_else(|| Status::not_found("no such result (already fetched or expired)"))?;
        Ok(encode(result.schema, result.batches))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.user(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        let info = flight_info(&schema, &query.as_any(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(&request).await?;
        let builder = query.into_builder(&self.sql_info);
        let schema = builder.schema();
        let batch = builder
            .build()
            .map_err(|_| Status::internal("internal error"))?;
        Ok(encode(schema, vec![batch]))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::unimplemented(format!(
            "{} is not supported",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
