//! The catalog as a plain-text table for terminals.

use std::fmt::Write as _;

use crate::Catalog;

/// One line per column: `database.table.column`, type, class, code system, meanings.
pub fn render_table(catalog: &Catalog, only_db: Option<&str>) -> String {
    let mut rows: Vec<[String; 6]> = Vec::new();
    for db in catalog
        .databases
        .values()
        .filter(|d| only_db.is_none_or(|o| o == d.name))
    {
        for t in &db.tables {
            for c in &t.columns {
                rows.push([
                    format!("{}.{}.{}", db.name, t.name, c.name),
                    format!("{:?}", c.ty).to_lowercase(),
                    c.class.as_str().to_string(),
                    c.code_system.clone().unwrap_or_default(),
                    c.meaning_ja.clone(),
                    c.meaning_en.clone(),
                ]);
            }
        }
    }
    let header = ["column", "type", "class", "code system", "意味", "meaning"].map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(display_width(cell));
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell}{}  ", " ".repeat(w - display_width(cell)));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} columns in {} databases",
        rows.len(),
        catalog.databases.len()
    );
    out
}

/// Terminal columns: East Asian wide characters take two.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}
