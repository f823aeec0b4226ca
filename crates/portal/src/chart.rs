//! Bar charts drawn by the server as SVG: no charting library, no script, and every text in
//! them escaped here (the template includes the drawing as it is).

use std::fmt::Write;

/// One bar: its label, the sum of its released cells, and how many of its cells were masked
/// (drawn hatched and listed: the bar is then a lower bound).
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) value: i64,
    pub(crate) masked: usize,
}

const WIDTH: u32 = 760;
const LABEL: u32 = 170;
const ROW: u32 = 22;
const VALUE_SPACE: u32 = 90;

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart titled `title`; `masked_note` is appended to a masked bar's value.
pub(crate) fn horizontal_bars(title: &str, bars: &[Bar], masked_note: &str) -> String {
    let height = ROW * bars.len().max(1) as u32 + 10;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let span = WIDTH - LABEL - VALUE_SPACE;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-labelledby="chart-title"><title id="chart-title">{}</title>"#,
        escape(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = i as u32 * ROW + 4;
        let w = ((b.value.max(0) as f64 / max as f64) * f64::from(span)).round() as u32;
        let class = if b.masked > 0 { "bar masked" } else { "bar" };
        let note = if b.masked > 0 {
            format!(" ({masked_note} {})", b.masked)
        } else {
            String::new()
        };
        let _ = write!(
            svg,
            r#"<text class="axis" x="{}" y="{}" text-anchor="end">{}</text><rect class="{class}" x="{LABEL}" y="{y}" width="{}" height="{}"><title>{}: {}{}</title></rect><text class="axis" x="{}" y="{}">{}{}</text>"#,
            LABEL - 6,
            y + 14,
            escape(&b.label),
            w.max(1),
            ROW - 6,
            escape(&b.label),
            b.value,
            escape(&note),
            LABEL + w + 4,
            y + 14,
            b.value,
            escape(&note),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cannot_inject_markup() {
        let bars = [Bar {
            label: "<script>alert(1)</script>".into(),
            value: 5,
            masked: 0,
        }];
        let svg = horizontal_bars("t", &bars, "masked");
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn masked_bars_are_marked_and_widths_scale() {
        let bars = [
            Bar {
                label: "a".into(),
                value: 100,
                masked: 0,
            },
            Bar {
                label: "b".into(),
                value: 50,
                masked: 2,
            },
        ];
        let svg = horizontal_bars("t", &bars, "masked cells");
        assert!(svg.contains(r#"class="bar masked""#));
        assert!(svg.contains("(masked cells 2)"));
        let span = WIDTH - LABEL - VALUE_SPACE;
        assert!(svg.contains(&format!(r#"width="{span}""#)));
        assert!(svg.contains(&format!(r#"width="{}""#, span / 2)));
    }
}
