//! Integration tests of the Visiting environment on a real (small) synthetic store.

mod attacks;
mod benign;
mod disclosure;
mod fixture;
mod outputs;
mod projects;
mod side_channels;
mod slt;
