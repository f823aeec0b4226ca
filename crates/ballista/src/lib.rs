//! niji on Ballista, DataFusion's distributed engine: an [`niji_sandbox::Engine`] that sends
//! checked plans to a Ballista scheduler (remote, or started in this process), the codecs that
//! carry niji's views and functions there, and the scheduler and executor processes of a niji
//! cluster. The guard, lineage, disclosure checks, limits and audit stay in the chokepoint,
//! which acts on the plan before and the result after, whichever engine runs it.

mod cluster;
mod codec;
mod engine;
mod standalone;

pub use cluster::{MIN_EXECUTOR_TIMEOUT_S, run_executor, run_scheduler};
pub use codec::{NijiLogicalCodec, NijiPhysicalCodec};
pub use engine::{BallistaEngine, engine_named};
pub use standalone::StandaloneSize;
