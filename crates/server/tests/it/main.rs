//! End-to-end tests against the real server on loopback.

mod adbc;
mod applications;
mod datasets;
mod http;
mod portal;
mod openapi;
mod scripts;
mod support;
