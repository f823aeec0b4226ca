//! The byte form niji's plan parts take to travel to another process (Ballista's scheduler and
//! executors): a tag naming the part and its version, then fields as little-endian integers and
//! length-prefixed bytes. Readers fail on anything short, long or unknown rather than guess.

/// Appends fields to a part's byte form.
#[derive(Debug, Default)]
pub struct WireWriter(Vec<u8>);

impl WireWriter {
    /// A part's form, opening with its `tag` (name and version, e.g. `niji.pseudonym.v1`).
    pub fn tagged(tag: &str) -> Self {
        let mut w = Self::default();
        w.text(tag);
        w
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    pub fn u64s(&mut self, values: &[u64]) -> &mut Self {
        self.u64(values.len() as u64);
        for v in values {
            self.u64(*v);
        }
        self
    }

    /// Floats by their bits: they come back exactly, NaN and signed zero included.
    pub fn f64s(&mut self, values: &[f64]) -> &mut Self {
        self.u64(values.len() as u64);
        for v in values {
            self.u64(v.to_bits());
        }
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a plan part's byte form: {0}")]
pub struct WireError(pub String);

/// What a form's reader may fail with: any error, kept as its source.
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// Reads a form whose tag `known` accepts, through to its end. Bytes of another form give
/// `Ok(None)`: they belong to another codec. A known form that does not read is an error.
pub fn read_tagged<T>(
    bytes: &[u8],
    known: impl Fn(&str) -> bool,
    read: impl FnOnce(&str, &mut WireReader<'_>) -> Result<T, ReadError>,
) -> Result<Option<T>, ReadError> {
    let Ok((tag, mut r)) = WireReader::open(bytes) else {
        return Ok(None);
    };
    if !known(&tag) {
        return Ok(None);
    }
    let value = read(&tag, &mut r)?;
    r.end()?;
    Ok(Some(value))
}

/// Reads fields back, in the order written.
#[derive(Debug)]
pub struct WireReader<'a>(&'a [u8]);

impl<'a> WireReader<'a> {
    /// The reader of a part's form, and its tag.
    pub fn open(bytes: &'a [u8]) -> Result<(String, Self), WireError> {
        let mut r = Self(bytes);
        let tag = r.text()?;
        Ok((tag, r))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let (head, tail) = self
            .0
            .split_at_checked(n)
            .ok_or_else(|| WireError("cut short".into()))?;
        self.0 = tail;
        Ok(head)
    }

    pub fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| WireError("cut short".into()))?,
        ))
    }

    fn len(&mut self, width: usize) -> Result<usize, WireError> {
        let n = usize::try_from(self.u64()?).map_err(|_| WireError("a length too long".into()))?;
        // A length beyond what is left is damage, not a reason to allocate.
        if n.saturating_mul(width) > self.0.len() {
            return Err(WireError(format!("a length of {n} beyond the bytes left")));
        }
        Ok(n)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.len(1)?;
        self.take(n)
    }

    pub fn text(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| WireError("text not UTF-8".into()))
    }

    pub fn u64s(&mut self) -> Result<Vec<u64>, WireError> {
        let n = self.len(8)?;
        (0..n).map(|_| self.u64()).collect()
    }

    pub fn f64s(&mut self) -> Result<Vec<f64>, WireError> {
        Ok(self.u64s()?.into_iter().map(f64::from_bits).collect())
    }

    /// The end: bytes left over mean the form is not what the reader expects.
    pub fn end(self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError(format!("{} bytes left over", self.0.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_as_written_and_damage_is_refused() {
        let mut w = WireWriter::tagged("niji.test.v1");
        w.u64(7)
            .text("東京")
            .u64s(&[1, u64::MAX])
            .f64s(&[-0.0, 2.5])
            .bytes(&[9, 9]);
        let bytes = w.finish();
        let (tag, mut r) = WireReader::open(&bytes).expect("open");
        assert_eq!(tag, "niji.test.v1");
        assert_eq!(r.u64().expect("u64"), 7);
        assert_eq!(r.text().expect("text"), "東京");
        assert_eq!(r.u64s().expect("u64s"), vec![1, u64::MAX]);
        let floats = r.f64s().expect("f64s");
        assert_eq!(floats[0].to_bits(), (-0.0f64).to_bits());
        assert_eq!(floats[1], 2.5);
        assert_eq!(r.bytes().expect("bytes"), &[9, 9]);
        r.end().expect("nothing left");

        let (_, mut short) = WireReader::open(&bytes[..bytes.len() - 1]).expect("open");
        short.u64().expect("u64");
        short.text().expect("text");
        short.u64s().expect("u64s");
        short.f64s().expect("f64s");
        assert!(short.bytes().is_err(), "a cut form is refused");
        let mut huge = WireWriter::tagged("t");
        huge.u64(u64::MAX / 2);
        let huge = huge.finish();
        let (_, mut r) = WireReader::open(&huge).expect("open");
        assert!(r.u64s().is_err(), "a length past the end allocates nothing");
    }
}
