//! Integration tests of the Visiting environment on a real (small) synthetic store.

mod attacks;
mod fixture;
mod projects;
mod slt;
