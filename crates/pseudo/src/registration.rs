//! A consent registration of 難病DB or 小慢DB as the person gave it (カナ氏名, 性別, 生年月日,
//! 承諾番号) and its 研究用ID. Ingest hashes the extract's fields through [`research_id`] and a
//! custodian recording a withdrawal goes through [`Registration::parse`], so both normalise
//! and order the fields one way: a withdrawal finds the rows its registration produced.

use crate::date::{self, CivilDate};
use crate::ident::IdHasher;
use crate::normalize;

/// Why a registration was not accepted. Names the field, never its value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistrationError {
    #[error("the kana name is empty")]
    KanaName,
    #[error("sex must be 1 or 2 (男/女, M/F)")]
    Sex,
    #[error("the birth date is not a date (YYYY-MM-DD, YYYYMMDD or 和暦)")]
    BirthDate,
    #[error("the consent number is empty")]
    ConsentNo,
}

/// A registration, normalised. Its `Debug` shows nothing of it: it holds a name and a birth
/// date.
pub struct Registration {
    kana: String,
    sex: u8,
    birth: CivilDate,
    consent: String,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registration(..)")
    }
}

impl Registration {
    /// Normalises the fields as ingest does: kana width, hiragana, spaces and small kana folded;
    /// 男/女 or 1/2; any date form ingest reads; the consent number NFKC and trimmed.
    pub fn parse(
        kana: &str,
        sex: &str,
        birth: &str,
        consent: &str,
    ) -> Result<Self, RegistrationError> {
        let kana = normalize::kana_name(kana).ok_or(RegistrationError::KanaName)?;
        let sex = normalize::sex(sex).map_err(|_| RegistrationError::Sex)?;
        let birth = date::parse_date(birth).map_err(|_| RegistrationError::BirthDate)?;
        let consent = normalize::nfkc(consent.trim()).into_owned();
        if consent.is_empty() {
            return Err(RegistrationError::ConsentNo);
        }
        Ok(Self {
            kana,
            sex,
            birth,
            consent,
        })
    }

    /// The registration's 研究用ID under `hasher` (the custodian key's research-ID hasher).
    pub fn research_id(&self, hasher: &IdHasher) -> [u8; 32] {
        research_id(hasher, &self.kana, self.sex, self.birth, &self.consent)
    }
}

/// 研究用ID of normalised fields, in the order DESIGN.md gives: kana name, sex, birth date,
/// consent number.
pub fn research_id(
    hasher: &IdHasher,
    kana: &str,
    sex: u8,
    birth: CivilDate,
    consent: &str,
) -> [u8; 32] {
    hasher.hash(&[
        kana.as_bytes(),
        &[b'0' + sex],
        &birth.canonical_bytes(),
        consent.as_bytes(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CustodianKey, IdKind};

    #[test]
    fn the_forms_an_extract_may_use_give_one_research_id() {
        let hasher = IdHasher::new(&CustodianKey::from_bytes([7; 32]), IdKind::ResearchId);
        let id = |k: &str, s: &str, b: &str, c: &str| {
            Registration::parse(k, s, b, c)
                .map(|r| r.research_id(&hasher))
                .expect("registration")
        };
        let plain = id("タカハシ　マサル", "1", "1953-06-06", "1000000100");
        let wide: String = "1000000100"
            .chars()
            .filter_map(|c| char::from_u32(c as u32 + 0xFEE0))
            .collect();
        let padded = format!(" {wide}\u{3000}");
        assert_eq!(plain, id("ﾀｶﾊｼ ﾏｻﾙ", "男", "S28.6.6", &padded));
        assert_eq!(plain, id("たかはし まさる", "M", "1953-6-6", "1000000100"));
        assert_ne!(
            plain,
            id("タカハシ　マサル", "1", "1953-06-06", "1000000101")
        );
        assert_ne!(
            plain,
            id("タカハシ　マサル", "2", "1953-06-06", "1000000100")
        );
    }

    #[test]
    fn a_field_that_cannot_be_read_is_named() {
        let err = |k: &str, s: &str, b: &str, c: &str| Registration::parse(k, s, b, c).err();
        assert_eq!(
            err(" ", "1", "1953-06-06", "1"),
            Some(RegistrationError::KanaName)
        );
        assert_eq!(
            err("ア", "3", "1953-06-06", "1"),
            Some(RegistrationError::Sex)
        );
        assert_eq!(
            err("ア", "1", "1953-13-06", "1"),
            Some(RegistrationError::BirthDate)
        );
        assert_eq!(
            err("ア", "1", "1953-06-06", "　"),
            Some(RegistrationError::ConsentNo)
        );
    }
}
