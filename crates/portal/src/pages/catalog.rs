//! The data catalog (public): every database, table and column with its meaning in Japanese
//! and English, its sensitivity class and code system; a search narrows it as one types.
//! It shows the catalog's definitions only, never data.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use niji_catalog::{Column, Table};
use serde::Deserialize;

use crate::Portal;
use crate::chrome::{Chrome, Visitor};

#[derive(Debug, Deserialize)]
pub(crate) struct Search {
    q: Option<String>,
}

pub(crate) struct DatabaseView {
    pub(crate) name: String,
    pub(crate) title_ja: String,
    pub(crate) title_en: String,
    pub(crate) tables: Vec<TableView>,
}

pub(crate) struct TableView {
    pub(crate) name: String,
    pub(crate) meaning_ja: String,
    pub(crate) meaning_en: String,
    pub(crate) columns: Vec<ColumnView>,
}

pub(crate) struct ColumnView {
    pub(crate) name: String,
    pub(crate) meaning_ja: String,
    pub(crate) meaning_en: String,
    pub(crate) class_key: String,
    pub(crate) code_system: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "catalog.html")]
pub(crate) struct CatalogPage {
    c: Chrome,
    q: String,
    databases: Vec<DatabaseView>,
    columns_shown: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "catalog.html", block = "results")]
pub(crate) struct CatalogResults {
    c: Chrome,
    databases: Vec<DatabaseView>,
    columns_shown: usize,
}

fn matches(needle: &str, texts: &[&str]) -> bool {
    needle.is_empty() || texts.iter().any(|t| t.to_lowercase().contains(needle))
}

fn column_view(c: &Column) -> ColumnView {
    ColumnView {
        name: c.name.clone(),
        meaning_ja: c.meaning_ja.clone(),
        meaning_en: c.meaning_en.clone(),
        class_key: format!("class.{}", c.class.as_str()),
        code_system: c.code_system.clone().unwrap_or_default(),
    }
}

fn table_view(t: &Table, needle: &str) -> Option<TableView> {
    let table_hit = matches(needle, &[&t.name, &t.meaning_ja, &t.meaning_en]);
    let columns: Vec<ColumnView> = t
        .columns
        .iter()
        .filter(|c| {
            table_hit
                || matches(
                    needle,
                    &[
                        &c.name,
                        &c.meaning_ja,
                        &c.meaning_en,
                        c.code_system.as_deref().unwrap_or(""),
                    ],
                )
        })
        .map(column_view)
        .collect();
    (!columns.is_empty()).then(|| TableView {
        name: t.name.clone(),
        meaning_ja: t.meaning_ja.clone(),
        meaning_en: t.meaning_en.clone(),
        columns,
    })
}

fn search(portal: &Portal, q: &str) -> (Vec<DatabaseView>, usize) {
    let needle = q.trim().to_lowercase();
    let databases: Vec<DatabaseView> = portal
        .visiting
        .catalog()
        .databases
        .values()
        .filter_map(|d| {
            let tables: Vec<TableView> = d
                .tables
                .iter()
                .filter_map(|t| table_view(t, &needle))
                .collect();
            (!tables.is_empty()).then(|| DatabaseView {
                name: d.name.clone(),
                title_ja: d.title_ja.clone(),
                title_en: d.title_en.clone(),
                tables,
            })
        })
        .collect();
    let shown = databases
        .iter()
        .flat_map(|d| &d.tables)
        .map(|t| t.columns.len())
        .sum();
    (databases, shown)
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    v: Visitor,
    Query(s): Query<Search>,
) -> CatalogPage {
    let q = s.q.unwrap_or_default();
    let (databases, columns_shown) = search(&portal, &q);
    CatalogPage {
        c: v.chrome,
        q,
        databases,
        columns_shown,
    }
}

pub(crate) async fn results(
    State(portal): State<Arc<Portal>>,
    v: Visitor,
    Query(s): Query<Search>,
) -> CatalogResults {
    let (databases, columns_shown) = search(&portal, s.q.as_deref().unwrap_or(""));
    CatalogResults {
        c: v.chrome,
        databases,
        columns_shown,
    }
}
