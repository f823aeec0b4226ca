//! Integration tests of the ingest, compiled as one binary: a real synthetic delivery, a real
//! key, real Parquet files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;

mod corpus;
mod determinism;
mod fail_closed;
mod linkage;
mod privacy;
mod quarantine;
