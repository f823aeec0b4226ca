//! Integration tests of the Visiting environment on a real (small) synthetic store.

mod anonymised;
mod attacks;
mod benign;
mod consent;
mod datasets;
mod disclosure;
mod fairness;
mod feasibility;
mod fixture;
mod ledgers;
mod monitoring;
mod outputs;
mod projects;
mod risk;
mod scripts;
mod shortcuts;
mod side_channels;
mod slt;
