//! `niji demo`: the quick-start job on embedded defaults, the custodian's commands and then the
//! Visiting environment's tour.

use clap::Args;

use crate::context::{Context, EnvArgs};
use crate::custodian::{
    AuditCommand, Format, IngestArgs, KeysCommand, SynthArgs, audit, ingest, keys, synth,
};
use crate::visiting;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub synth: SynthArgs,
}

/// The quick-start job on embedded defaults.
pub fn demo(ctx: &Context, env: &EnvArgs, a: &DemoArgs) -> anyhow::Result<()> {
    synth(&a.synth)?;
    if !ctx.key_file.exists() {
        keys(ctx, &KeysCommand::Init)?;
    }
    println!();
    ingest(
        ctx,
        &IngestArgs {
            raw: a.synth.out.join("raw"),
            only: Vec::new(),
            truth: Some(a.synth.out.join("truth/truth.csv")),
            format: Format::Table,
            memory_mb: niji_ingest::DEFAULT_MEMORY_BUDGET >> 20,
        },
    )?;
    println!("\nVisiting environment (`niji query`, `niji serve`):");
    visiting::demo(ctx, env)?;
    println!("\naudit log (`niji audit show` lists the entries):");
    audit(
        ctx,
        &AuditCommand::Verify {
            format: Format::Table,
        },
    )?;
    println!("\ncatalog (`niji catalog` prints every column):");
    let catalog = ctx.catalog()?;
    for db in catalog.in_ingest_order() {
        let columns: usize = db.tables.iter().map(|t| t.columns.len()).sum();
        let pad = 50usize.saturating_sub(niji_catalog::display_width(&db.title_ja));
        println!(
            "  {:<10} {}{} {} tables, {} columns",
            db.name,
            db.title_ja,
            " ".repeat(pad),
            db.tables.len(),
            columns
        );
    }
    Ok(())
}
