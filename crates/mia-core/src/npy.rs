//! The NumPy `.npy` format (version 1.0), the exchange format for attack signals: logits,
//! labels, membership masks. Supports little-endian `f4`, `f8`, `i8`, `i4`, `u1` and `b1`,
//! C order. Reading is strict: a truncated or malformed buffer is an error, never a panic.

use crate::CoreError;

/// The element data of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// 32-bit floats (`<f4`; `<f8` is read into this too).
    F32(Vec<f32>),
    /// 64-bit integers (`<i8`; `<i4` and `|u1` are read into this too).
    I64(Vec<i64>),
    /// Booleans (`|b1`).
    Bool(Vec<bool>),
}

/// An n-dimensional array.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Elements in C order.
    pub data: NpyData,
}

impl NpyArray {
    /// A float array; fails when `data.len()` does not match `shape`.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, CoreError> {
        Self::checked(shape, NpyData::F32(data))
    }
    /// An integer array.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Self, CoreError> {
        Self::checked(shape, NpyData::I64(data))
    }
    /// A boolean array.
    pub fn bool(shape: Vec<usize>, data: Vec<bool>) -> Result<Self, CoreError> {
        Self::checked(shape, NpyData::Bool(data))
    }

    fn checked(shape: Vec<usize>, data: NpyData) -> Result<Self, CoreError> {
        let a = Self { shape, data };
        if a.len() != a.shape.iter().product::<usize>() {
            return Err(CoreError::Shape(format!("{} elements for shape {:?}", a.len(), a.shape)));
        }
        Ok(a)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            NpyData::F32(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::Bool(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Serialises to `.npy` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let descr = match self.data {
            NpyData::F32(_) => "<f4",
            NpyData::I64(_) => "<i8",
            NpyData::Bool(_) => "|b1",
        };
        let shape = match self.shape.len() {
            1 => format!("({},)", self.shape[0]),
            _ => format!(
                "({})",
                self.shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
        let unpadded = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + self.len() * 8);
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        match &self.data {
            NpyData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            NpyData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        }
        out
    }

    /// Parses `.npy` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        let err = |m: &str| CoreError::Npy(m.to_string());
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(err("missing the \\x93NUMPY magic"));
        }
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
            2 | 3 if bytes.len() >= 12 => {
                (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
            }
            v => return Err(CoreError::Npy(format!("unsupported version {v}"))),
        };
        let header = start
            .checked_add(header_len)
            .and_then(|end| bytes.get(start..end))
            .ok_or_else(|| err("truncated header"))?;
        let header = std::str::from_utf8(header).map_err(|_| err("header is not UTF-8"))?;
        let descr = field(header, "descr").ok_or_else(|| err("header has no descr"))?;
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        if field(header, "fortran_order").is_some_and(|f| f.starts_with("True")) {
            return Err(err("Fortran-ordered arrays are not supported"));
        }
        let shape_s = field(header, "shape").ok_or_else(|| err("header has no shape"))?;
        let inner = shape_s
            .trim()
            .strip_prefix('(')
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| err("malformed shape"))?;
        let shape = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<usize>().map_err(|_| err("malformed shape")))
            .collect::<Result<Vec<_>, _>>()?;
        let body = &bytes[start + header_len..];
        let width = match descr {
            "<f4" | "<i4" => 4,
            "<f8" | "<i8" => 8,
            "|b1" | "|u1" | "<u1" => 1,
            d => return Err(CoreError::Npy(format!("unsupported dtype {d}"))),
        };
        // The header may claim any shape (2^40 elements): the product is checked, and nothing
        // is allocated beyond what the body actually holds.
        let n = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|n| n.checked_mul(width).is_some())
            .ok_or_else(|| err("the shape's element count overflows"))?;
        if body.len() < n * width {
            return Err(CoreError::Npy(format!(
                "truncated data: {} bytes for {n} elements of {descr}",
                body.len()
            )));
        }
        let chunks = body[..n * width].chunks_exact(width);
        let data = match descr {
            "<f4" => {
                NpyData::F32(chunks.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            "<f8" => NpyData::F32(
                chunks
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        f64::from_le_bytes(b) as f32
                    })
                    .collect(),
            ),
            "<i4" => NpyData::I64(
                chunks.map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
            ),
            "<i8" => NpyData::I64(
                chunks
                    .map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        i64::from_le_bytes(b)
                    })
                    .collect(),
            ),
            "|b1" => NpyData::Bool(chunks.map(|c| c[0] != 0).collect()),
            _ => NpyData::I64(chunks.map(|c| i64::from(c[0])).collect()),
        };
        Ok(Self { shape, data })
    }
}

/// The text after `'key':` up to the next top-level comma (shapes keep their parentheses).
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header.find(&format!("'{key}'"))?;
    let rest = header[pos + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        return rest.find(')').map(|e| &rest[..=e]);
    }
    Some(rest.split(',').next()?.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype_and_pads_header_to_64() {
        for a in [
            NpyArray::f32(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]).unwrap(),
            NpyArray::i64(vec![3], vec![-1, 0, 1 << 40]).unwrap(),
            NpyArray::bool(vec![2], vec![true, false]).unwrap(),
        ] {
            let bytes = a.to_bytes();
            let header_end = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!(header_end % 64, 0);
            assert_eq!(NpyArray::from_bytes(&bytes).unwrap(), a);
        }
    }

    #[test]
    fn truncated_and_garbage_inputs_are_errors() {
        let bytes = NpyArray::f32(vec![4], vec![1.0; 4]).unwrap().to_bytes();
        assert!(NpyArray::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(NpyArray::from_bytes(b"hello").is_err());
        assert!(NpyArray::from_bytes(&bytes[..20]).is_err());
        assert!(NpyArray::f32(vec![3], vec![1.0]).is_err());
    }

    /// A header with the given shape text and no data.
    fn header_only(shape: &str) -> Vec<u8> {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out
    }

    #[test]
    fn huge_claimed_shapes_are_refused_before_allocating() {
        // 2^40 elements in a 128-byte file: refused because the body is short, not allocated.
        let e = NpyArray::from_bytes(&header_only("(1099511627776,)")).unwrap_err();
        assert!(e.to_string().contains("truncated data"), "{e}");
        // A product that overflows usize is an error, not a panic.
        let e = NpyArray::from_bytes(&header_only("(4294967296, 4294967296, 16)")).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        // A version-2 header length past the end of the file.
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend(u32::MAX.to_le_bytes());
        assert!(NpyArray::from_bytes(&v2).is_err());
    }
}
