//! The normalisation contract. Identifier inputs pass through these functions, and only these,
//! before they are hashed, so two spellings of the same fact give the same identifier.
//!
//! Kana names ([`kana_name`]):
//! 1. NFKC: half-width kana become full-width (ｼﾞﾛｳ → ジロウ, voiced marks composed), full-width
//!    Latin letters and digits become ASCII;
//! 2. hiragana become katakana (じろう → ジロウ);
//! 3. every space (ASCII, full-width U+3000, tabs) and the middle dot ・ are removed;
//! 4. small kana are written large (ショウコ → シヨウコ, ッ → ツ, ヵ → カ): legacy receipt
//!    systems printed half-width kana without small forms, so both spellings occur for one
//!    person and only the large form can be produced from either;
//! 5. dash-like characters (‐ - – — ― − －) become the long-vowel mark ー.
//!
//! Insured-number parts ([`digits`], [`symbol`]) are NFKC-folded and stripped of spaces and
//! hyphens; 保険者番号 must carry a valid check digit ([`insurer_number`]).

use unicode_normalization::UnicodeNormalization;

use std::borrow::Cow;

/// NFKC, borrowing when the text is already in NFKC form for certain: ASCII and precomposed
/// full-width katakana and hiragana, which NFKC leaves alone (a combining mark, which could
/// compose with them, is not in that set).
pub fn nfkc(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_stable_under_nfkc) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfkc().collect())
    }
}

fn is_stable_under_nfkc(c: char) -> bool {
    c.is_ascii() || matches!(c, '\u{3041}'..='\u{3096}' | '\u{30A1}'..='\u{30F6}' | 'ー')
}

/// Small kana written large (rule 4 above); other characters unchanged.
pub fn large_kana(c: char) -> char {
    match c {
        'ァ' => 'ア',
        'ィ' => 'イ',
        'ゥ' => 'ウ',
        'ェ' => 'エ',
        'ォ' => 'オ',
        'ッ' => 'ツ',
        'ャ' => 'ヤ',
        'ュ' => 'ユ',
        'ョ' => 'ヨ',
        'ヮ' => 'ワ',
        'ヵ' => 'カ',
        'ヶ' => 'ケ',
        other => other,
    }
}

fn is_dash(c: char) -> bool {
    matches!(c, '-' | '‐' | '‑' | '–' | '—' | '―' | '−' | '－' | 'ｰ')
}

/// Normalised カナ氏名, or `None` when nothing is left.
pub fn kana_name(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    // The ideographic space (NFKC: U+0020) is removed below like any space, so a name of
    // stable characters and U+3000 needs no NFKC pass.
    let folded = if raw
        .chars()
        .all(|c| c == '\u{3000}' || is_stable_under_nfkc(c))
    {
        Cow::Borrowed(raw)
    } else {
        nfkc(raw)
    };
    for c in folded.chars() {
        let c = match c {
            // Hiragana block ぁ..ゖ maps 1:1 onto katakana ァ..ヶ, 0x60 code points up.
            '\u{3041}'..='\u{3096}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        };
        if c.is_whitespace() || c == '・' {
            continue;
        }
        out.push(if is_dash(c) { 'ー' } else { large_kana(c) });
    }
    (!out.is_empty()).then_some(out)
}

/// A digits-only field (記号 digits, 番号, 枝番): NFKC, spaces and hyphens removed.
/// `None` when empty; `Err` when anything but digits remains.
pub fn digits(raw: &str) -> Result<Option<Cow<'_, str>>, &'static str> {
    let folded = nfkc(raw);
    if !folded.is_empty() && folded.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Some(folded));
    }
    let out: String = folded
        .chars()
        .filter(|c| !c.is_whitespace() && !is_dash(*c))
        .collect();
    if out.is_empty() {
        return Ok(None);
    }
    if !out.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not digits");
    }
    Ok(Some(Cow::Owned(out)))
}

/// 記号 may hold kana, letters and digits: NFKC, spaces removed, dash variants unified to '-',
/// kana folded as in names.
pub fn symbol(raw: &str) -> Cow<'_, str> {
    if raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(
        kana_name(raw)
            .map(|s| s.replace('ー', "-"))
            .unwrap_or_default(),
    )
}

/// 保険者番号: 6 digits (国民健康保険) or 8 (法別番号 + 都道府県 + 保険者別番号 + 検証番号), the last
/// digit a check digit over the others (weights 2,1,2,1… from the right, digit sums added,
/// 10 minus the last digit of the sum).
pub fn insurer_number(raw: &str) -> Result<Option<Cow<'_, str>>, &'static str> {
    let Some(d) = digits(raw)? else {
        return Ok(None);
    };
    if d.len() != 6 && d.len() != 8 {
        return Err("insurer number must have 6 or 8 digits");
    }
    let (body, check) = d.split_at(d.len() - 1);
    if check_digit(body) != check.as_bytes()[0] - b'0' {
        return Err("insurer number check digit does not match");
    }
    Ok(Some(d))
}

/// The 検証番号 of an insurer number body (all digits but the last).
pub fn check_digit(body: &str) -> u8 {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let p = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// 性別: `1`/`2`, also 男/女 and M/F. Anything else is refused.
pub fn sex(raw: &str) -> Result<u8, &'static str> {
    match nfkc(raw).as_ref().trim() {
        "1" | "男" | "M" | "m" => Ok(1),
        "2" | "女" | "F" | "f" => Ok(2),
        _ => Err("sex must be 1 or 2"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_width_hiragana_spaces_and_small_kana_agree() {
        let forms = [
            "ヤマダ タロウ",
            "ﾔﾏﾀﾞ ﾀﾛｳ",
            "やまだ　たろう",
            "ヤマダ　　タロウ",
            " ﾔﾏﾀﾞﾀﾛｳ ",
            "ヤマダ・タロウ",
        ];
        for f in forms {
            assert_eq!(kana_name(f).as_deref(), Some("ヤマダタロウ"), "{f}");
        }
        assert_eq!(kana_name("サトウ ショウコ"), kana_name("ｻﾄｳ ｼﾖｳｺ"));
        assert_eq!(kana_name("キッカワ").as_deref(), Some("キツカワ"));
        assert_eq!(kana_name("ｷｯｶﾜ").as_deref(), Some("キツカワ"));
        assert_eq!(kana_name("ヴァン").as_deref(), Some("ヴアン"));
        assert_eq!(kana_name("ﾕｰｺ"), kana_name("ユ－コ"));
        assert_eq!(kana_name("ユーコ").as_deref(), Some("ユーコ"));
        assert_eq!(kana_name("  　"), None);
    }

    #[test]
    fn different_names_stay_different() {
        assert_ne!(kana_name("ヤマダ タロウ"), kana_name("ヤマダ ジロウ"));
        assert_ne!(kana_name("ハシ"), kana_name("バシ"));
    }

    #[test]
    fn digits_fold_width_and_hyphens() {
        assert_eq!(digits("１２３ ４５-6"), Ok(Some("123456".into())));
        assert_eq!(digits(""), Ok(None));
        assert!(digits("12A4").is_err());
    }

    #[test]
    fn insurer_check_digit() {
        // 法別 01, 都道府県 13, 保険者別 001: weighted digit sum 8, so 検証番号 2.
        assert_eq!(check_digit("0113001"), 2);
        assert_eq!(insurer_number("01130012"), Ok(Some("01130012".into())));
        assert_eq!(
            insurer_number("０１１３００１２"),
            Ok(Some("01130012".into()))
        );
        assert!(insurer_number("01130013").is_err());
        assert!(insurer_number("0113001").is_err());
        assert_eq!(insurer_number(" "), Ok(None));
        // A one-digit typo is always caught by the check digit.
        let good = format!("3913101{}", check_digit("3913101"));
        assert_eq!(good, "39131016");
        for pos in 0..7 {
            for d in b'0'..=b'9' {
                let mut typo = good.as_bytes().to_vec();
                if typo[pos] == d {
                    continue;
                }
                typo[pos] = d;
                let typo = String::from_utf8(typo).unwrap();
                assert!(insurer_number(&typo).is_err(), "{typo}");
            }
        }
    }

    #[test]
    fn symbols_and_sex() {
        assert_eq!(symbol("ア１２－３４"), "ア12-34");
        assert_eq!(symbol("ｱ 12-34"), "ア12-34");
        assert_eq!(sex("1"), Ok(1));
        assert_eq!(sex("女"), Ok(2));
        assert!(sex("3").is_err());
    }
}
