//! End-to-end tests against the real server on loopback.

mod adbc;
mod applications;
mod datasets;
mod http;
mod openapi;
mod portal;
mod scripts;
mod support;
