//! `sqlx::migrate!` embeds the migrations folder when the crate compiles: a migration added
//! later must rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
