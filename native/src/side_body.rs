//! The tile store's side-index version-2 body (`adapters/tile_sideindex.py`, `body_of`) of a
//! batch whose every string column comes as the leaf batch's dictionary: `hub ledger verify`
//! re-encodes each recomputed 50k-leaf batch this way and compares it with the stored body,
//! and the sync writes it. The Python `body_of` stays the reference (every other batch, and
//! `tests/adversarial/test_s23_verify23_native_body.py` compares the two on random columns).
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// The width `_unsigned` picks for the largest value `top` (0 for none): the smallest of 1, 2,
/// 4, 8 bytes that holds it.
fn width_of(top: u64) -> usize {
    if top <= 0xFF {
        1
    } else if top <= 0xFFFF {
        2
    } else if top <= 0xFFFF_FFFF {
        4
    } else {
        8
    }
}

/// The width byte, then value `i` of `n` (`value(i)`) at that width: cut to it, as NumPy's
/// `astype` of a narrower unsigned type keeps the low bytes. One loop per width, so each
/// store is of a known size.
fn put_unsigned(out: &mut [u8], width: usize, n: usize, value: impl Fn(usize) -> u64) -> usize {
    out[0] = width as u8;
    let dst = &mut out[1..1 + n * width];
    match width {
        1 => dst
            .iter_mut()
            .enumerate()
            .for_each(|(i, d)| *d = value(i) as u8),
        2 => dst
            .chunks_exact_mut(2)
            .enumerate()
            .for_each(|(i, d)| d.copy_from_slice(&(value(i) as u16).to_le_bytes())),
        4 => dst
            .chunks_exact_mut(4)
            .enumerate()
            .for_each(|(i, d)| d.copy_from_slice(&(value(i) as u32).to_le_bytes())),
        _ => dst
            .chunks_exact_mut(8)
            .enumerate()
            .for_each(|(i, d)| d.copy_from_slice(&value(i).to_le_bytes())),
    }
    1 + n * width
}

fn i32_at(index: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(index[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

fn i64_at(packed: &[u8], i: usize) -> i64 {
    i64::from_le_bytes(packed[8 * i..8 * i + 8].try_into().expect("8 bytes"))
}

/// The zigzag code of the difference (modulo 2**64) from value `i` to value `i + 1`.
fn zigzag_at(packed: &[u8], i: usize) -> u64 {
    let d = i64_at(packed, i + 1).wrapping_sub(i64_at(packed, i));
    ((d as u64) << 1) ^ ((d >> 63) as u64)
}

/// One column, read and sized before anything is written.
enum Column<'a> {
    /// `_integers`: little-endian int64 values; the width of their zigzag-coded differences
    Ints(&'a [u8], usize),
    /// `_strings_of`: the texts' UTF-8 bytes, their total size, the int32 indexes, the width
    /// of the indexes + 1
    Texts(Vec<&'a [u8]>, usize, &'a [u8], usize),
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Column::Ints(packed, width) => {
                let n = packed.len() / 8;
                8 + 1 + n.saturating_sub(1) * width
            }
            Column::Texts(texts, size, index, width) => {
                8 + 4 * texts.len() + size + 1 + index.len() / 4 * width
            }
        }
    }

    /// Writes the column at the start of `out`; returns the bytes written.
    fn put(&self, out: &mut [u8]) -> usize {
        match self {
            Column::Ints(packed, width) => {
                let n = packed.len() / 8;
                let first = if n > 0 { i64_at(packed, 0) } else { 0 };
                out[..8].copy_from_slice(&first.to_le_bytes());
                8 + put_unsigned(&mut out[8..], *width, n.saturating_sub(1), |i| {
                    zigzag_at(packed, i)
                })
            }
            Column::Texts(texts, size, index, width) => {
                out[..4].copy_from_slice(&(texts.len() as u32).to_le_bytes());
                out[4..8].copy_from_slice(&(*size as u32).to_le_bytes());
                let mut at = 8;
                let mut end: u64 = 0;
                for t in texts {
                    end += t.len() as u64;
                    out[at..at + 4].copy_from_slice(&(end as u32).to_le_bytes());
                    at += 4;
                }
                for t in texts {
                    out[at..at + t.len()].copy_from_slice(t);
                    at += t.len();
                }
                // -1 (null) .. len - 1 -> 0 .. len, in int32 as the reference adds; a negative
                // value keeps its low bytes (sign-extended to 8), as NumPy casts it
                let n = index.len() / 4;
                at + put_unsigned(&mut out[at..], *width, n, |i| {
                    i64::from(i32_at(index, i).wrapping_add(1)) as u64
                })
            }
        }
    }
}

/// A string column `(values, index)` read: None when a text is no valid UTF-8 (a lone
/// surrogate: the reference raises its own error) or a size does not fit a u32.
fn texts<'a>(words: &'a [Bound<'a, PyString>], index: &'a [u8]) -> Option<Column<'a>> {
    let mut out: Vec<&[u8]> = Vec::with_capacity(words.len());
    for w in words {
        out.push(w.to_str().ok()?.as_bytes());
    }
    let size: usize = out.iter().map(|t| t.len()).sum();
    if out.len() > u32::MAX as usize || size > u32::MAX as usize || index.len() % 4 != 0 {
        return None;
    }
    let n = index.len() / 4;
    let top = (0..n)
        .map(|i| i32_at(index, i).wrapping_add(1))
        .max()
        .unwrap_or(0);
    Some(Column::Texts(out, size, index, width_of(top.max(0) as u64)))
}

/// An integer column (little-endian int64 bytes) read: None when not a whole number of values.
fn ints(packed: &[u8]) -> Option<Column<'_>> {
    if packed.len() % 8 != 0 {
        return None;
    }
    let n = packed.len() / 8;
    let top = (0..n.saturating_sub(1))
        .map(|i| zigzag_at(packed, i))
        .max()
        .unwrap_or(0);
    Some(Column::Ints(packed, width_of(top)))
}

/// The inflated version-2 body of the columns given in schema order: a string column as
/// `(values, index)` (the leaf batch's dictionary: distinct texts, int32 indexes, -1 null), an
/// integer column as its values in little-endian int64 bytes (no null). None when a column
/// cannot be written here (the Python reference then writes or refuses it).
#[pyfunction]
fn side_index_body<'py>(
    py: Python<'py>,
    columns: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    // every Python object first (held for the borrows below), then each column read and sized
    let mut held: Vec<(Bound<'py, PyBytes>, Option<Vec<Bound<'py, PyString>>>)> = Vec::new();
    for col in columns.iter() {
        if let Ok(b) = col.downcast::<PyBytes>() {
            held.push((b.clone(), None));
            continue;
        }
        let Ok(t) = col.downcast::<PyTuple>() else {
            return Ok(None);
        };
        if t.len() != 2 {
            return Ok(None);
        }
        let (values, index) = (t.get_item(0)?, t.get_item(1)?);
        let (Ok(values), Ok(index)) = (values.downcast::<PyList>(), index.downcast::<PyBytes>())
        else {
            return Ok(None);
        };
        let mut words = Vec::with_capacity(values.len());
        for v in values.iter() {
            let Ok(w) = v.downcast_into::<PyString>() else {
                return Ok(None);
            };
            words.push(w);
        }
        held.push((index.clone(), Some(words)));
    }
    let mut read: Vec<Column<'_>> = Vec::with_capacity(held.len());
    for (data, words) in &held {
        let got = match words {
            None => ints(data.as_bytes()),
            Some(words) => texts(words, data.as_bytes()),
        };
        let Some(got) = got else {
            return Ok(None);
        };
        read.push(got);
    }
    let total = read.iter().map(Column::len).sum();
    let out = PyBytes::new_with(py, total, |buf| {
        let mut at = 0;
        for col in &read {
            at += col.put(&mut buf[at..]);
        }
        debug_assert_eq!(at, total);
        Ok(())
    })?;
    Ok(Some(out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(side_index_body, m)?)
}
