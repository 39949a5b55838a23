//! Column-wise decoding of one Avro object-container block (records back to back, one flat
//! writer schema) in one call (`avro_block_columns`), or of a batch's blocks together
//! (`avro_batch_columns`: the same reading and checks per block, one set of columns). The pure-Python reference is `ingest/avrofile.py`
//! (`decode_block_py`); `tests/unit/test_avro_file_columns.py` checks both give equal columns,
//! and equal fastavro's datums, on random schemas and records.
//!
//! Nothing is decided here: on anything the decoder does not read exactly as fastavro would
//! (a varint longer than 10 bytes, a read past the block's end, a union branch other than 0/1,
//! an enum index out of range, a decimal wider than 8 bytes, a timestamp outside Python's
//! datetime range, a boolean byte other than 0/1, invalid UTF-8, bytes left after the last
//! record) it returns None and the caller reads the block with fastavro, the reference.
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

// The value kinds and the timestamp bounds are avro_columns' (the same plan codes from Python).
use crate::avro_columns::{
    BOOLEAN, BYTES, DECIMAL, DOUBLE, ENUM, FLOAT, LONG, MAX_US, MIN_US, STRING, TIMESTAMP,
};

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    #[inline]
    fn long(&mut self) -> Option<i64> {
        let mut z: u64 = 0;
        for k in 0..10 {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            z |= ((byte & 0x7F) as u64) << (7 * k);
            if byte & 0x80 == 0 {
                return Some(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        None
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
}

/// One field's column: 8-byte words (i64 / f64) or 1 byte (booleans) per row, or i32 offsets
/// (n + 1) and their bytes for strings; a validity byte per row for unions with null.
struct Column {
    kind: u8,
    null_index: i64,
    aux: i64,
    words: Vec<u8>,
    data: Vec<u8>,
    valid: Vec<u8>,
}

impl Column {
    #[inline]
    fn absent(&mut self) {
        match self.kind {
            STRING | BYTES => self
                .words
                .extend_from_slice(&(self.data.len() as i32).to_le_bytes()),
            BOOLEAN => self.words.push(0),
            _ => self.words.extend_from_slice(&0i64.to_le_bytes()),
        }
    }

    /// Read one value; None where fastavro's reading is left to fastavro. With `emit` false
    /// the value is read and checked exactly the same but not kept (a row of the block outside
    /// the rows asked for).
    #[inline]
    fn read(&mut self, r: &mut Reader, emit: bool) -> Option<()> {
        if self.null_index >= 0 {
            let branch = r.long()?;
            if branch != 0 && branch != 1 {
                return None;
            }
            if branch == self.null_index {
                if emit {
                    self.valid.push(0);
                    self.absent();
                }
                return Some(());
            }
            if emit {
                self.valid.push(1);
            }
        }
        match self.kind {
            LONG | TIMESTAMP | ENUM => {
                let v = r.long()?;
                if (self.kind == ENUM && !(0..self.aux).contains(&v))
                    || (self.kind == TIMESTAMP && !(MIN_US..=MAX_US).contains(&v))
                {
                    return None;
                }
                if emit {
                    self.words.extend_from_slice(&v.to_le_bytes());
                }
            }
            STRING | BYTES | DECIMAL => {
                let len = r.long()?;
                if len < 0 {
                    return None;
                }
                let bytes = r.take(len as usize)?;
                if self.kind == DECIMAL {
                    if bytes.len() > 8 {
                        return None;
                    }
                    let mut u: u64 = 0;
                    for &x in bytes {
                        u = (u << 8) | x as u64;
                    }
                    let mut value = u as i64;
                    let n = bytes.len();
                    if n > 0 && n < 8 && bytes[0] & 0x80 != 0 {
                        value -= 1i64 << (8 * n);
                    }
                    if emit {
                        self.words.extend_from_slice(&value.to_le_bytes());
                    }
                } else {
                    if self.kind == STRING && std::str::from_utf8(bytes).is_err() {
                        return None;
                    }
                    if emit {
                        if self.data.len() + bytes.len() >= (1 << 31) {
                            return None;
                        }
                        self.data.extend_from_slice(bytes);
                        self.words
                            .extend_from_slice(&(self.data.len() as i32).to_le_bytes());
                    }
                }
            }
            BOOLEAN => {
                let b = r.take(1)?[0];
                if b > 1 {
                    return None;
                }
                if emit {
                    self.words.push(b);
                }
            }
            DOUBLE => {
                let w = r.take(8)?;
                if emit {
                    self.words.extend_from_slice(w);
                }
            }
            FLOAT => {
                let w = r.take(4)?;
                if emit {
                    let f = f32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f64;
                    self.words.extend_from_slice(&f.to_le_bytes());
                }
            }
            _ => return None,
        }
        Some(())
    }
}

fn columns(fields: &[(u8, i64, i64)], rows: usize) -> Vec<Column> {
    fields
        .iter()
        .map(|&(kind, null_index, aux)| {
            let width = match kind {
                BOOLEAN => 1,
                STRING | BYTES => 4,
                _ => 8,
            };
            let mut words = Vec::with_capacity(width * (rows + 1));
            if kind == STRING || kind == BYTES {
                words.extend_from_slice(&0i32.to_le_bytes());
            }
            Column {
                kind,
                null_index,
                aux,
                words,
                data: Vec::new(),
                valid: if null_index >= 0 {
                    Vec::with_capacity(rows)
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// Read all `count` records of one block's `b` (every check, and nothing may be left after
/// the last record), keeping rows `lo..hi` in `cols`; None as `Column::read`.
fn read_block(b: &[u8], count: usize, lo: usize, hi: usize, cols: &mut [Column]) -> Option<()> {
    if count > b.len() {
        return None; // every field takes a byte at least: fastavro names the problem
    }
    let mut r = Reader { b, at: 0 };
    for row in 0..count {
        let emit = lo <= row && row < hi;
        for c in cols.iter_mut() {
            c.read(&mut r, emit)?;
        }
    }
    if r.at != b.len() {
        return None;
    }
    Some(())
}

fn columns_out<'py>(py: Python<'py>, cols: Vec<Column>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for c in cols {
        let item = PyTuple::new(
            py,
            [
                PyBytes::new(py, &c.words).into_any(),
                if c.null_index >= 0 {
                    PyBytes::new(py, &c.valid).into_any()
                } else {
                    py.None().into_bound(py)
                },
                if c.kind == STRING || c.kind == BYTES {
                    PyBytes::new(py, &c.data).into_any()
                } else {
                    py.None().into_bound(py)
                },
            ],
        )?;
        out.append(item)?;
    }
    Ok(out)
}

/// Decode the `count` records of one block's (decompressed) `data` with the field plan
/// `fields` ((kind, null branch index or -1, aux: the enum's symbol count) per field).
///
/// Returns None (the caller reads the block with fastavro) or a list with one tuple per field:
/// (values, validity or None, string bytes or None): values are i64 / f64 little-endian
/// (decimals: the unscaled i64; enums: the index; floats widened to f64), one byte per row for
/// booleans, i32 offsets (n + 1) for strings and bytes; validity is one byte per row.
#[pyfunction]
fn avro_block_columns<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyBytes>,
    count: usize,
    fields: Vec<(u8, i64, i64)>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let b = data.as_bytes();
    if fields.is_empty() || count > b.len() {
        return Ok(None); // every field takes a byte at least: fastavro names the problem
    }
    let mut cols = columns(&fields, count);
    let ok = py.allow_threads(|| read_block(b, count, 0, count, &mut cols));
    if ok.is_none() {
        return Ok(None);
    }
    Ok(Some(columns_out(py, cols)?))
}

/// `avro_block_columns` of several blocks at once, as one set of columns: `segments` are
/// (decompressed data, record count, lo, hi) per block; every block is read whole and checked
/// as `avro_block_columns` checks it, and rows `lo..hi` of each are kept, in order. None when
/// any block is declined (the caller reads the batch with fastavro), or a segment's rows are
/// not inside its block.
#[pyfunction]
fn avro_batch_columns<'py>(
    py: Python<'py>,
    segments: Vec<(Bound<'py, PyBytes>, usize, usize, usize)>,
    fields: Vec<(u8, i64, i64)>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    if fields.is_empty() || segments.is_empty() {
        return Ok(None);
    }
    let mut rows = 0usize;
    for (data, count, lo, hi) in &segments {
        if *count == 0 || *count > data.as_bytes().len() || lo >= hi || *hi > *count {
            return Ok(None);
        }
        rows += hi - lo;
    }
    let blocks: Vec<(&[u8], usize, usize, usize)> = segments
        .iter()
        .map(|(d, c, lo, hi)| (d.as_bytes(), *c, *lo, *hi))
        .collect();
    let mut cols = columns(&fields, rows);
    let ok = py.allow_threads(|| {
        for &(b, count, lo, hi) in &blocks {
            read_block(b, count, lo, hi, &mut cols)?;
        }
        Some(())
    });
    if ok.is_none() {
        return Ok(None);
    }
    Ok(Some(columns_out(py, cols)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(avro_block_columns, m)?)?;
    m.add_function(wrap_pyfunction!(avro_batch_columns, m)?)?;
    Ok(())
}
