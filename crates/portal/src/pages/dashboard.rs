//! The dashboard (public): open aggregates of the standard datasets a custodian published,
//! as server-drawn bar charts and tables. A bar with masked cells is hatched and says how
//! many; its value is the sum of the released cells only.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::Portal;
use crate::chart::{Bar, horizontal_bars};
use crate::chrome::{Chrome, Visitor};
use crate::error::PortalError;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Choice {
    dataset: Option<String>,
    by: Option<String>,
    disease: Option<String>,
}

pub(crate) struct Option_ {
    pub(crate) value: String,
    pub(crate) label: String,
    pub(crate) selected: bool,
}

pub(crate) struct Charts {
    pub(crate) title: String,
    pub(crate) version: String,
    pub(crate) built_at: String,
    pub(crate) measure: String,
    pub(crate) svg: String,
    pub(crate) bars: Vec<Bar>,
    pub(crate) masked_total: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub(crate) struct DashboardPage {
    c: Chrome,
    datasets: Vec<Option_>,
    groupings: Vec<Option_>,
    diseases: Vec<Option_>,
    charts: Option<Charts>,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html", block = "charts")]
pub(crate) struct ChartsFragment {
    c: Chrome,
    charts: Option<Charts>,
}

fn column_strings(
    batch: &arrow::array::RecordBatch,
    name: &str,
) -> Result<Option<StringArray>, PortalError> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let cast = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)
        .map_err(|e| PortalError::Refused(format!("column {name}: {e}")))?;
    Ok(cast.as_any().downcast_ref::<StringArray>().cloned())
}

/// Everything the page shows for a choice, and the choice completed with its defaults.
struct Drawn {
    datasets: Vec<Option_>,
    groupings: Vec<Option_>,
    diseases: Vec<Option_>,
    charts: Option<Charts>,
}

async fn draw(portal: &Portal, c: &Chrome, choice: Choice) -> Result<Drawn, PortalError> {
    let v = &portal.visiting;
    let published = v.published_datasets().await?;
    let ja = c.lang == "ja";
    let Some(name) = choice
        .dataset
        .filter(|d| published.contains(d))
        .or_else(|| published.first().cloned())
    else {
        return Ok(Drawn {
            datasets: vec![],
            groupings: vec![],
            diseases: vec![],
            charts: None,
        });
    };
    let standard = v.standard_datasets();
    let datasets = published
        .iter()
        .filter_map(|p| standard.get(p).map(|d| (p, d)))
        .map(|(p, d)| Option_ {
            value: p.clone(),
            label: if ja {
                d.dataset.title_ja.clone()
            } else {
                d.dataset.title_en.clone()
            },
            selected: *p == name,
        })
        .collect();
    let Some(definition) = standard.get(&name) else {
        return Err(PortalError::NotFound);
    };
    let items = &definition.dataset.grouping;
    let by = choice
        .by
        .filter(|b| items.iter().any(|i| i.name == *b))
        .or_else(|| {
            items
                .iter()
                .find(|i| i.name == "fiscal_year")
                .map(|i| i.name.clone())
        })
        .or_else(|| items.first().map(|i| i.name.clone()))
        .unwrap_or_default();
    let groupings = items
        .iter()
        .filter(|i| i.name != "disease_no")
        .map(|i| Option_ {
            value: i.name.clone(),
            label: if ja {
                i.meaning_ja.clone()
            } else {
                i.meaning_en.clone()
            },
            selected: i.name == by,
        })
        .collect();
    let Some(measure) = definition.dataset.measures.first() else {
        return Ok(Drawn {
            datasets,
            groupings,
            diseases: vec![],
            charts: None,
        });
    };
    let Some(table) = v.published_table(&name).await? else {
        return Ok(Drawn {
            datasets,
            groupings,
            diseases: vec![],
            charts: None,
        });
    };
    let disease = choice.disease.filter(|d| !d.is_empty());
    let mut sums: BTreeMap<(i64, String), (i64, usize)> = BTreeMap::new();
    let mut diseases = std::collections::BTreeSet::new();
    for batch in &table.batches {
        let Some(keys) = column_strings(batch, &by)? else {
            continue;
        };
        let disease_col = column_strings(batch, "disease_no")?;
        let values = arrow::compute::cast(
            batch
                .column_by_name(&measure.name)
                .ok_or_else(|| PortalError::Refused(format!("no column {}", measure.name)))?,
            &arrow::datatypes::DataType::Int64,
        )
        .map_err(|e| PortalError::Refused(e.to_string()))?;
        let values = values
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or(PortalError::NotFound)?;
        for row in 0..batch.num_rows() {
            if let Some(d) = &disease_col {
                let this = d.is_valid(row).then(|| d.value(row).to_string());
                if let Some(this) = &this {
                    diseases.insert(this.parse::<i64>().unwrap_or(i64::MAX).to_string());
                }
                if disease.is_some() && this != disease {
                    continue;
                }
            }
            let label = if keys.is_valid(row) {
                keys.value(row).to_string()
            } else {
                "—".into()
            };
            let order = label.parse::<i64>().unwrap_or(i64::MAX);
            let slot = sums.entry((order, label)).or_default();
            if values.is_valid(row) {
                slot.0 += values.value(row);
            } else {
                slot.1 += 1;
            }
        }
    }
    let bars: Vec<Bar> = sums
        .into_iter()
        .map(|((_, label), (value, masked))| Bar {
            label,
            value,
            masked,
        })
        .collect();
    let mut disease_list: Vec<String> = diseases.into_iter().collect();
    disease_list.sort_by_key(|d| d.parse::<i64>().unwrap_or(i64::MAX));
    let diseases = disease_list
        .into_iter()
        .map(|d| Option_ {
            selected: disease.as_deref() == Some(d.as_str()),
            label: d.clone(),
            value: d,
        })
        .collect();
    let measure_label = if ja {
        measure.meaning_ja.clone()
    } else {
        measure.meaning_en.clone()
    };
    let title = format!(
        "{} — {}",
        if ja {
            &definition.dataset.title_ja
        } else {
            &definition.dataset.title_en
        },
        measure_label
    );
    let masked_note = c.t.get("dashboard.masked_cells");
    let charts = Charts {
        svg: horizontal_bars(&title, &bars, masked_note),
        masked_total: bars.iter().map(|b| b.masked).sum(),
        title,
        version: table.version.version.clone(),
        built_at: table.version.built_at,
        measure: measure_label,
        bars,
    };
    Ok(Drawn {
        datasets,
        groupings,
        diseases,
        charts: Some(charts),
    })
}

pub(crate) async fn page(
    State(portal): State<Arc<Portal>>,
    v: Visitor,
    Query(choice): Query<Choice>,
) -> Result<DashboardPage, PortalError> {
    let d = draw(&portal, &v.chrome, choice).await?;
    Ok(DashboardPage {
        c: v.chrome,
        datasets: d.datasets,
        groupings: d.groupings,
        diseases: d.diseases,
        charts: d.charts,
    })
}

pub(crate) async fn charts(
    State(portal): State<Arc<Portal>>,
    v: Visitor,
    Query(choice): Query<Choice>,
) -> Result<ChartsFragment, PortalError> {
    let d = draw(&portal, &v.chrome, choice).await?;
    Ok(ChartsFragment {
        c: v.chrome,
        charts: d.charts,
    })
}
