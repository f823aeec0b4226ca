//! Complementary suppression: a lone masked cell in a line of the table would be given back
//! by the line's total, so a partner goes with it.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use super::cells::smallest;

/// Where a line of the table (cells that differ in one group key only) has exactly one masked
/// cell of a column, the line's total (published or derived from other releases) would give
/// it back: mask that column of the smallest other cell of the line too, until no line has a
/// lone masked cell in any column. `key_texts`: per row, its group keys as text. Rows
/// `withheld` are in no line: a partner masked for one would tell that its group exists (a
/// total released before in the project that would give one back is caught by differencing).
pub(super) fn complementary(
    masked: &mut [BTreeMap<usize, String>],
    aggregate_columns: &[usize],
    group_sets: &[Vec<RoaringBitmap>],
    key_texts: &[Vec<String>],
    withheld: &[bool],
) {
    const REASON: &str = "complementary: protects a suppressed cell of the same line";
    let keys = key_texts.first().map_or(0, Vec::len);
    // The lines along each key, built once: the rows that share every other key.
    let lines: Vec<Vec<usize>> = (0..keys)
        .flat_map(|varying| {
            let mut by_rest: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
            for (row, texts) in key_texts
                .iter()
                .enumerate()
                .filter(|(row, _)| !withheld[*row])
            {
                let rest = texts
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != varying)
                    .map(|(_, t)| t.as_str())
                    .collect();
                by_rest.entry(rest).or_default().push(row);
            }
            by_rest.into_values()
        })
        .collect();
    loop {
        let mut changed = false;
        for members in &lines {
            for &c in aggregate_columns {
                let lone = members
                    .iter()
                    .filter(|&&r| masked[r].contains_key(&c))
                    .count()
                    == 1;
                if !lone {
                    continue;
                }
                let partner = members
                    .iter()
                    .copied()
                    .filter(|&r| !masked[r].contains_key(&c))
                    .min_by_key(|&r| smallest(&group_sets[r]));
                if let Some(r) = partner {
                    masked[r].insert(c, REASON.to_string());
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_masked_cell_takes_the_smallest_of_its_line_along() {
        // Rows: (sex, band) = (1,a) (1,b) (1,c) (2,a) (2,b) (2,c); row 0 is masked.
        let keys = [
            ("1", "a"),
            ("1", "b"),
            ("1", "c"),
            ("2", "a"),
            ("2", "b"),
            ("2", "c"),
        ];
        let sizes = [3u32, 50, 40, 60, 70, 30];
        let group_sets: Vec<Vec<RoaringBitmap>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![(i as u32 * 1000..i as u32 * 1000 + n).collect()])
            .collect();
        let mut masked = vec![BTreeMap::new(); 6];
        masked[0].insert(2, "fewer than 10 persons".to_string());
        let key_texts: Vec<Vec<String>> = keys
            .iter()
            .map(|(sex, band)| vec![sex.to_string(), band.to_string()])
            .collect();
        complementary(&mut masked, &[2], &group_sets, &key_texts, &[false; 6]);
        let masked_rows: Vec<usize> = (0..6).filter(|&r| !masked[r].is_empty()).collect();
        // Along sex within band a: (2,a) goes; along band within sex 1 the smallest partner,
        // (1,c); within sex 2, (2,a) is now alone, so its smallest other, (2,c), goes too.
        assert_eq!(masked_rows, [0, 2, 3, 5]);
        assert!(masked[2][&2].starts_with("complementary"));
        // No line is left with a lone masked cell.
        for line in [[0, 1, 2], [3, 4, 5]] {
            assert_ne!(line.iter().filter(|&&r| !masked[r].is_empty()).count(), 1);
        }
        for line in [[0, 3], [1, 4], [2, 5]] {
            assert_ne!(line.iter().filter(|&&r| !masked[r].is_empty()).count(), 1);
        }
    }
}
