//! How a checked plan travels to Ballista's scheduler (logical) and from it to the executors
//! (physical). Ballista's own codecs carry its shuffles and file formats; these wrap them and
//! add niji's parts: a project view (its name, kind and plan, itself encoded with this codec),
//! the views' functions, and disclosure control's functions and aggregates. Each travels as
//! what it computes with, never a key it was made from (see `niji_sandbox::encode_view_function`).
//! A function of DataFusion's own travels by name, as Ballista sends it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::{
    BallistaCodec, BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use datafusion_proto::logical_plan::{AsLogicalPlan, LogicalExtensionCodec};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::LogicalPlanNode;
use niji_sandbox::views::ProjectView;
use niji_store::wire::{WireWriter, read_tagged};
use prost::Message;

const VIEW: &str = "niji.project-view.v1";

/// niji's codecs, made once per process: every plan a server sends, and every plan a
/// scheduler or executor decodes, uses the same two.
#[derive(Debug)]
pub(crate) struct Codecs {
    logical: Arc<NijiLogicalCodec>,
    physical: Arc<NijiPhysicalCodec>,
}

static CODECS: LazyLock<Codecs> = LazyLock::new(|| {
    let functions = Functions {
        builtins: Arc::new(
            SessionStateBuilder::new()
                .with_default_features()
                .build()
                .scalar_functions()
                .clone(),
        ),
    };
    Codecs {
        logical: Arc::new(NijiLogicalCodec {
            ballista: BallistaLogicalExtensionCodec::default(),
            functions: functions.clone(),
        }),
        physical: Arc::new(NijiPhysicalCodec {
            ballista: BallistaPhysicalExtensionCodec::default(),
            functions,
        }),
    }
});

impl Codecs {
    pub(crate) fn get() -> &'static Codecs {
        &CODECS
    }

    /// `config` with niji's codecs on Ballista's, as every niji plan travels.
    pub(crate) fn on(&self, config: SessionConfig) -> SessionConfig {
        config
            .with_ballista_logical_extension_codec(self.logical.clone())
            .with_ballista_physical_extension_codec(self.physical.clone())
            .upgrade_for_ballista()
    }

    /// The pair, as a scheduler's or an executor's process takes them.
    pub(crate) fn ballista(&self) -> BallistaCodec {
        BallistaCodec::new(self.logical.clone(), self.physical.clone())
    }

    pub(crate) fn logical(&self) -> Arc<NijiLogicalCodec> {
        self.logical.clone()
    }

    pub(crate) fn physical(&self) -> Arc<NijiPhysicalCodec> {
        self.physical.clone()
    }
}

/// niji's functions and aggregates in their byte forms, and DataFusion's own by name (the
/// functions a total function wraps are looked up among them).
#[derive(Debug, Clone)]
struct Functions {
    builtins: Arc<HashMap<String, Arc<ScalarUDF>>>,
}

impl Functions {
    fn encode_udf(&self, udf: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(bytes) = niji_sandbox::encode_view_function(udf) {
            buf.extend_from_slice(&bytes);
        } else if let Some(bytes) = niji_disclosure::wire::encode_function(udf)? {
            buf.extend_from_slice(&bytes);
        } else if udf.name().starts_with("niji_") {
            // A niji function without a byte form would be looked up by name and not found,
            // or worse, found as another: refuse it here.
            return plan_err!("{} has no byte form to travel to Ballista", udf.name());
        }
        // Anything else is DataFusion's own, sent by name.
        Ok(())
    }

    fn decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        if buf.is_empty() {
            return self
                .builtins
                .get(name)
                .cloned()
                .ok_or_else(|| DataFusionError::Plan(format!("no function {name}")));
        }
        if let Some(udf) = niji_sandbox::decode_view_function(buf)? {
            return Ok(Arc::new(udf));
        }
        let builtin = |n: &str| self.builtins.get(n).cloned();
        match niji_disclosure::wire::decode_function(buf, &builtin)? {
            Some(udf) => Ok(Arc::new(udf)),
            None => plan_err!("{name} came in a form niji does not know"),
        }
    }

    fn encode_udaf(&self, udaf: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        match niji_disclosure::wire::encode_aggregate(udaf) {
            Some(bytes) => buf.extend_from_slice(&bytes),
            None if udaf.name().starts_with("niji_") => {
                return plan_err!("{} has no byte form to travel to Ballista", udaf.name());
            }
            None => {}
        }
        Ok(())
    }

    fn decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        match niji_disclosure::wire::decode_aggregate(buf)? {
            Some(udaf) => Ok(Arc::new(udaf)),
            None => plan_err!("{name} came in a form niji does not know"),
        }
    }
}

/// Client to scheduler: the checked plan, its views and functions ([`Codecs`] has the one).
#[derive(Debug)]
pub struct NijiLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
    functions: Functions,
}

impl NijiLogicalCodec {
    fn encode_view(&self, view: &ProjectView, buf: &mut Vec<u8>) -> Result<()> {
        let plan = LogicalPlanNode::try_from_logical_plan(view.plan(), self)?;
        let mut w = WireWriter::tagged(VIEW);
        w.text(&view.name)
            .u64(match view.kind() {
                TableType::Base => 0,
                TableType::View => 1,
                TableType::Temporary => 2,
            })
            .bytes(&plan.encode_to_vec());
        buf.extend_from_slice(&w.finish());
        Ok(())
    }

    fn decode_view(&self, buf: &[u8], ctx: &TaskContext) -> Result<Option<ProjectView>> {
        read_tagged(
            buf,
            |tag| tag == VIEW,
            |_, r| {
                let name = r.text()?;
                let kind = match r.u64()? {
                    0 => TableType::Base,
                    1 => TableType::View,
                    2 => TableType::Temporary,
                    other => return Err(format!("a view of kind {other}").into()),
                };
                let plan = LogicalPlanNode::decode(r.bytes()?)?.try_into_logical_plan(ctx, self)?;
                Ok(ProjectView::new(name, plan, kind))
            },
        )
        .map_err(DataFusionError::from)
    }
}

impl LogicalExtensionCodec for NijiLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match self.decode_view(buf, ctx)? {
            Some(view) => {
                // The scan above it was planned against this schema: a view that came out
                // otherwise is not the view that was sent.
                if view.schema().fields() != schema.fields() {
                    return plan_err!("{table_ref} arrived with another schema");
                }
                Ok(Arc::new(view))
            }
            None => self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let any: &dyn Any = node.as_ref();
        match any.downcast_ref::<ProjectView>() {
            Some(view) => self.encode_view(view, buf),
            None => self
                .ballista
                .try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.functions.decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.functions.decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode_udaf(node, buf)
    }
}

/// Scheduler to executors: each stage's physical plan and the functions in it ([`Codecs`] has
/// the one).
#[derive(Debug)]
pub struct NijiPhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
    functions: Functions,
}

impl PhysicalExtensionCodec for NijiPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.ballista.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.ballista.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.functions.decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.functions.decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.functions.encode_udaf(node, buf)
    }
}
