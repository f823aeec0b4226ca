//! Names as extracts write them: half-width kana, name variants, full-width digits.

use super::*;

const KANA_FULL: &str = "ァアィイゥウェエォオカキクケコサシスセソタチッツテトナニヌネノハヒフヘホマミムメモャヤュユョヨラリルレロワヲンー";
const KANA_HALF: &str = "ｧｱｨｲｩｳｪｴｫｵｶｷｸｹｺｻｼｽｾｿﾀﾁｯﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓｬﾔｭﾕｮﾖﾗﾘﾙﾚﾛﾜｦﾝｰ";
const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボヴ";
const VOICED_BASE: &str = "カキクケコサシスセソタチツテトハヒフヘホウ";
const SEMI: &str = "パピプペポ";
const SEMI_BASE: &str = "ハヒフヘホ";

pub(super) fn half_width(c: char, small_as_large: bool) -> String {
    let find = |set: &str, c: char| set.chars().position(|x| x == c);
    let half = |c: char| {
        let c = if small_as_large {
            niji_pseudo::normalize::large_kana(c)
        } else {
            c
        };
        find(KANA_FULL, c)
            .and_then(|i| KANA_HALF.chars().nth(i))
            .unwrap_or(c)
    };
    if let Some(i) = find(VOICED, c) {
        return format!("{}ﾞ", half(VOICED_BASE.chars().nth(i).unwrap_or(c)));
    }
    if let Some(i) = find(SEMI, c) {
        return format!("{}ﾟ", half(SEMI_BASE.chars().nth(i).unwrap_or(c)));
    }
    match c {
        '　' => " ".to_string(),
        _ => half(c).to_string(),
    }
}

/// A name as some clerk or system wrote it: widths, spaces, hiragana, legacy large kana.
pub(super) fn render_name(rng: &mut Rng, canonical: &str, sink: &mut Sink) -> String {
    let mut name: String = canonical.to_string();
    if rng.chance(0.005) {
        // One mistyped kana.
        let chars: Vec<char> = name.chars().collect();
        let pos = rng.below(chars.len() as u64) as usize;
        if chars[pos] != '　' {
            let replacement = *rng.pick(&[
                'ア', 'カ', 'サ', 'タ', 'ナ', 'ハ', 'マ', 'ヤ', 'ラ', 'ワ', 'ン', 'ー',
            ]);
            if replacement != chars[pos] {
                name = chars
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| if i == pos { replacement } else { c })
                    .collect();
                sink.count("name_typos");
            }
        }
    }
    match rng.below(100) {
        0..=59 => name,
        60..=69 => name.replace('　', " "),
        70..=74 => name.replace('　', ""),
        75..=77 => name.replace('　', "　　"),
        78..=91 => {
            let legacy = rng.chance(0.5);
            name.chars().map(|c| half_width(c, legacy)).collect()
        }
        _ => name
            .chars()
            .map(|c| {
                if ('ァ'..='ヶ').contains(&c) {
                    char::from_u32(c as u32 - 0x60).unwrap_or(c)
                } else {
                    c
                }
            })
            .collect(),
    }
}

pub(super) fn full_width_digits(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 - 0x30 + 0xFF10).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_width_tables_line_up() {
        assert_eq!(KANA_FULL.chars().count(), KANA_HALF.chars().count());
        assert_eq!(VOICED.chars().count(), VOICED_BASE.chars().count());
        let name: String = "ヤマダ　ジョウ"
            .chars()
            .map(|c| half_width(c, false))
            .collect();
        assert_eq!(name, "ﾔﾏﾀﾞ ｼﾞｮｳ");
        let legacy: String = "ショウコ".chars().map(|c| half_width(c, true)).collect();
        assert_eq!(legacy, "ｼﾖｳｺ");
    }
}
