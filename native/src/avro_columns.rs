//! Column-wise Avro decoding of a batch of Confluent wire-format values (one writer schema), and
//! the batch's envelope columns, each in one call. The pure-Python reference is
//! `projections/columnar.py` (`decode_bodies`, `envelope`); `tests/unit/test_native_avro_columns.py`
//! checks both give equal Arrow columns on random records and the same error on malformed ones.
//!
//! The reference parses one field for every record at once and checks conditions in a fixed
//! order over all records (a varint longer than 10 bytes, then a record shorter than its schema,
//! then the kind's own check...). Here each record is parsed field by field too, and the failed
//! check that comes first in that order wins, whichever record failed it: the same message.
//! Reads past a record's end see the next record's bytes, past the batch's end zeros, exactly as
//! the reference's joined buffer with its 16-byte zero pad does; nothing is read out of bounds.
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::collections::HashMap;

pub(crate) const LONG: u8 = 0;
pub(crate) const TIMESTAMP: u8 = 1;
pub(crate) const STRING: u8 = 2;
pub(crate) const BYTES: u8 = 3;
pub(crate) const BOOLEAN: u8 = 4;
pub(crate) const DOUBLE: u8 = 5;
pub(crate) const FLOAT: u8 = 6;
pub(crate) const ENUM: u8 = 7;
pub(crate) const DECIMAL: u8 = 8;
pub(crate) const NULL: u8 = 9;

pub(crate) const MIN_US: i64 = -62_135_596_800_000_000 + 86_400_000_000;
pub(crate) const MAX_US: i64 = 253_402_300_799_999_999 - 86_400_000_000;

// The reference's checks, in the order it makes them (a lower stage wins).
const TOO_LONG: u8 = 1;
const SHORT: u8 = 2;
const KIND: u8 = 3;
const WIDE: u8 = 4;
const UTF8: u8 = 5;

struct Buf {
    b: Vec<u8>,
}

impl Buf {
    #[inline]
    fn at(&self, p: usize) -> u8 {
        if p < self.b.len() {
            self.b[p]
        } else {
            0
        }
    }

    /// (zig-zag decoded value, bytes used, longer than 10 bytes)
    #[inline]
    fn varint(&self, cur: usize) -> (i64, usize, bool) {
        let mut z: u64 = 0;
        let mut k = 0usize;
        loop {
            let b = self.at(cur + k);
            z |= ((b & 0x7F) as u64) << (7 * k);
            k += 1;
            if b & 0x80 == 0 {
                break;
            }
            if k == 10 {
                return (0, k, true);
            }
        }
        (((z >> 1) as i64) ^ -((z & 1) as i64), k, false)
    }
}

struct Failure {
    stage: u8,
    message: &'static str,
}

impl Failure {
    fn none() -> Self {
        Failure {
            stage: u8::MAX,
            message: "",
        }
    }
    #[inline]
    fn set(&mut self, stage: u8, message: &'static str) {
        if stage < self.stage {
            self.stage = stage;
            self.message = message;
        }
    }
    fn failed(&self) -> bool {
        self.stage != u8::MAX
    }
}

/// One decoded column over the rows given (in their order).
struct Column {
    words: Vec<u8>, // i64 / f64 / u8 per row, or i32 offsets (n + 1) for strings
    data: Vec<u8>,  // string bytes
}

fn kind_message(kind: u8) -> &'static str {
    match kind {
        ENUM => "an enum index out of range",
        TIMESTAMP => "a timestamp outside Python's datetime range",
        BOOLEAN => "a boolean byte other than 0/1",
        _ => "a length runs past its record",
    }
}

/// Parse one non-union kind at the cursors of `rows` (advanced in place).
fn decode_value(
    buf: &Buf,
    kind: u8,
    aux: i64,
    rows: &[usize],
    cur: &mut [usize],
    end: &[usize],
    fail: &mut Failure,
) -> Column {
    let n = rows.len();
    let mut col = Column {
        words: Vec::new(),
        data: Vec::new(),
    };
    match kind {
        LONG | TIMESTAMP | ENUM => {
            col.words.reserve(8 * n);
            for &r in rows {
                let (v, used, long) = buf.varint(cur[r]);
                if long {
                    fail.set(TOO_LONG, "a varint longer than 10 bytes");
                    col.words.extend_from_slice(&0i64.to_le_bytes());
                    continue;
                }
                cur[r] += used;
                if cur[r] > end[r] {
                    fail.set(SHORT, "a record is shorter than its schema");
                } else if (kind == ENUM && (v < 0 || v >= aux))
                    || (kind == TIMESTAMP && !(MIN_US..=MAX_US).contains(&v))
                {
                    fail.set(KIND, kind_message(kind));
                }
                col.words.extend_from_slice(&v.to_le_bytes());
            }
        }
        STRING | BYTES | DECIMAL => {
            let mut total: u64 = 0;
            if kind == DECIMAL {
                col.words.reserve(8 * n);
            } else {
                col.words.reserve(4 * (n + 1));
                col.words.extend_from_slice(&0i32.to_le_bytes());
            }
            for &r in rows {
                let (len, used, long) = buf.varint(cur[r]);
                let mut value: i64 = 0;
                if long {
                    fail.set(TOO_LONG, "a varint longer than 10 bytes");
                } else {
                    cur[r] += used;
                    if cur[r] > end[r] {
                        fail.set(SHORT, "a record is shorter than its schema");
                    } else if len < 0 || (cur[r] as u64).saturating_add(len as u64) > end[r] as u64
                    {
                        fail.set(KIND, "a length runs past its record");
                    } else {
                        let len = len as usize;
                        let at = cur[r];
                        if kind == DECIMAL {
                            if len > 8 {
                                fail.set(WIDE, "a decimal wider than 64 bits");
                            } else {
                                let mut u: u64 = 0;
                                for j in 0..len {
                                    u = (u << 8) | buf.at(at + j) as u64;
                                }
                                value = u as i64;
                                if len > 0 && len < 8 && buf.at(at) & 0x80 != 0 {
                                    value -= 1i64 << (8 * len);
                                }
                            }
                        } else {
                            total += len as u64;
                            if total >= 1 << 31 {
                                fail.set(WIDE, "more than 2 GiB of strings in one batch");
                            } else {
                                let bytes = &buf.b[at..at + len];
                                if kind == STRING && std::str::from_utf8(bytes).is_err() {
                                    fail.set(UTF8, "invalid UTF-8");
                                }
                                col.data.extend_from_slice(bytes);
                            }
                        }
                        cur[r] += len;
                    }
                }
                if kind == DECIMAL {
                    col.words.extend_from_slice(&value.to_le_bytes());
                } else {
                    col.words
                        .extend_from_slice(&(col.data.len() as i32).to_le_bytes());
                }
            }
        }
        BOOLEAN | DOUBLE | FLOAT => {
            let width = match kind {
                BOOLEAN => 1,
                DOUBLE => 8,
                _ => 4,
            };
            col.words.reserve(if kind == BOOLEAN { n } else { 8 * n });
            for &r in rows {
                let at = cur[r];
                cur[r] += width;
                if cur[r] > end[r] {
                    fail.set(SHORT, "a record is shorter than its schema");
                }
                match kind {
                    BOOLEAN => {
                        let b = buf.at(at);
                        if b > 1 && cur[r] <= end[r] {
                            fail.set(KIND, "a boolean byte other than 0/1");
                        }
                        col.words.push((b != 0) as u8);
                    }
                    DOUBLE => {
                        let mut w = [0u8; 8];
                        for (j, x) in w.iter_mut().enumerate() {
                            *x = buf.at(at + j);
                        }
                        col.words.extend_from_slice(&w);
                    }
                    _ => {
                        let mut w = [0u8; 4];
                        for (j, x) in w.iter_mut().enumerate() {
                            *x = buf.at(at + j);
                        }
                        col.words
                            .extend_from_slice(&(f32::from_le_bytes(w) as f64).to_le_bytes());
                    }
                }
            }
        }
        _ => {} // NULL: no bytes
    }
    col
}

/// Decode the bodies of wire-format `values` (a list of bytes or None) whose schema id is
/// `schema_id` with the field plan `fields` ((kind, null branch index or -1, aux) per field).
///
/// Returns a str (the reference's error message), None (several schema ids: the caller uses the
/// reference), or a list with one tuple per field: (values, validity or None, string bytes or
/// None): values are i64/f64 little-endian (decimals: the unscaled i64; enums: the index),
/// u8 for booleans, i32 offsets for strings and bytes; validity is one byte per row.
#[pyfunction]
fn avro_columns<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    schema_id: u32,
    fields: Vec<(u8, i64, i64)>,
) -> PyResult<PyObject> {
    let n = values.len();
    if n == 0 {
        return Ok(PyString::new(py, "no records").into_any().unbind());
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(n);
    for v in values.iter() {
        if v.is_none() {
            return Ok(PyString::new(py, "a null value").into_any().unbind());
        }
        let b = v
            .downcast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("avro_columns takes a list of bytes or None."))?;
        // SAFETY: the list holds every value for the whole call, and the GIL is held.
        parts
            .push(unsafe { std::slice::from_raw_parts(b.as_bytes().as_ptr(), b.as_bytes().len()) });
    }
    decode_parts(py, &parts, schema_id, &fields)
}

/// `avro_columns` of the wire-format values `parts` (one slice per record, none null).
pub(crate) fn decode_parts(
    py: Python<'_>,
    parts: &[&[u8]],
    schema_id: u32,
    fields: &[(u8, i64, i64)],
) -> PyResult<PyObject> {
    let n = parts.len();
    if n == 0 {
        return Ok(PyString::new(py, "no records").into_any().unbind());
    }
    if parts.iter().any(|p| p.len() < 5) {
        let m = "a value shorter than the wire-format prefix";
        return Ok(PyString::new(py, m).into_any().unbind());
    }
    if parts.iter().any(|p| p[0] != 0) {
        let m = "a value without the wire-format magic byte";
        return Ok(PyString::new(py, m).into_any().unbind());
    }
    let want = schema_id.to_be_bytes();
    if parts.iter().any(|p| p[1..5] != want) {
        return Ok(py.None());
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut b = Vec::with_capacity(total);
    let mut cur = Vec::with_capacity(n);
    let mut end = Vec::with_capacity(n);
    for p in parts.iter() {
        cur.push(b.len() + 5);
        b.extend_from_slice(p);
        end.push(b.len());
    }
    let buf = Buf { b };
    let all: Vec<usize> = (0..n).collect();
    let out = PyList::empty(py);
    for &(kind, null_index, aux) in fields.iter() {
        let mut fail = Failure::none();
        let (col, valid) = if null_index < 0 {
            (
                decode_value(&buf, kind, aux, &all, &mut cur, &end, &mut fail),
                None,
            )
        } else {
            let mut present: Vec<usize> = Vec::with_capacity(n);
            let mut valid: Vec<u8> = Vec::with_capacity(n);
            for r in 0..n {
                let (branch, used, long) = buf.varint(cur[r]);
                if long {
                    fail.set(TOO_LONG, "a varint longer than 10 bytes");
                    valid.push(0);
                    continue;
                }
                cur[r] += used;
                if cur[r] > end[r] {
                    fail.set(SHORT, "a record is shorter than its schema");
                } else if branch != 0 && branch != 1 {
                    fail.set(KIND, "a union branch out of range");
                }
                let here = branch != null_index;
                valid.push(here as u8);
                if here {
                    present.push(r);
                }
            }
            if fail.failed() {
                return Ok(PyString::new(py, fail.message).into_any().unbind());
            }
            let sub = decode_value(&buf, kind, aux, &present, &mut cur, &end, &mut fail);
            (spread(sub, kind, &valid), Some(valid))
        };
        if !fail.failed() && cur.iter().zip(end.iter()).any(|(c, e)| c > e) {
            fail.set(SHORT, "a record is shorter than its schema");
        }
        if fail.failed() {
            return Ok(PyString::new(py, fail.message).into_any().unbind());
        }
        let data = if kind == STRING || kind == BYTES {
            Some(PyBytes::new(py, &col.data))
        } else {
            None
        };
        let item = PyTuple::new(
            py,
            [
                PyBytes::new(py, &col.words).into_any(),
                match valid {
                    Some(v) => PyBytes::new(py, &v).into_any(),
                    None => py.None().into_bound(py),
                },
                match data {
                    Some(d) => d.into_any(),
                    None => py.None().into_bound(py),
                },
            ],
        )?;
        out.append(item)?;
    }
    Ok(out.into_any().unbind())
}

/// A column of the present rows only, spread to every row (absent rows: zero / empty).
fn spread(sub: Column, kind: u8, valid: &[u8]) -> Column {
    let n = valid.len();
    match kind {
        STRING | BYTES => {
            let offs: Vec<i32> = sub
                .words
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let mut words = Vec::with_capacity(4 * (n + 1));
            words.extend_from_slice(&0i32.to_le_bytes());
            let mut k = 0usize;
            for &v in valid {
                if v != 0 {
                    k += 1;
                }
                words.extend_from_slice(&offs.get(k).copied().unwrap_or(0).to_le_bytes());
            }
            Column {
                words,
                data: sub.data,
            }
        }
        NULL => sub,
        _ => {
            let w = if kind == BOOLEAN { 1 } else { 8 };
            let mut words = vec![0u8; w * n];
            let mut k = 0usize;
            for (r, &v) in valid.iter().enumerate() {
                if v != 0 {
                    words[w * r..w * (r + 1)].copy_from_slice(&sub.words[w * k..w * (k + 1)]);
                    k += 1;
                }
            }
            Column {
                words,
                data: Vec::new(),
            }
        }
    }
}

/// The envelope of a batch of stored records: (offsets as i64 bytes, tenant index per record,
/// type index per record (u32 bytes), distinct `ce_tenant` values, distinct `ce_type` values),
/// the distinct values as bytes or None (header absent) in first-seen order; with a repeated
/// header the last one counts (as ``dict(headers)``). None when a record's headers are not
/// (str, bytes-or-None) pairs: the reference decides.
#[pyfunction]
fn envelope_columns<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let n = records.len();
    let mut offsets: Vec<u8> = Vec::with_capacity(8 * n);
    let mut tenant_idx: Vec<u8> = Vec::with_capacity(4 * n);
    let mut type_idx: Vec<u8> = Vec::with_capacity(4 * n);
    let mut names: HashMap<usize, u8> = HashMap::new(); // name object -> 0 other, 1 tenant, 2 type
    let mut by_object: [HashMap<usize, u32>; 2] = [HashMap::new(), HashMap::new()];
    let mut by_value: [HashMap<Option<Vec<u8>>, u32>; 2] = [HashMap::new(), HashMap::new()];
    let mut distinct: [Vec<PyObject>; 2] = [Vec::new(), Vec::new()];
    let headers_name = pyo3::intern!(py, "headers");
    let offset_name = pyo3::intern!(py, "offset");
    let none_ptr = py.None().as_ptr() as usize;
    for rec in records.iter() {
        let offset: i64 = rec.getattr(offset_name)?.extract()?;
        offsets.extend_from_slice(&offset.to_le_bytes());
        let headers = rec.getattr(headers_name)?;
        let Ok(headers) = headers.downcast::<PyTuple>() else {
            return Ok(None);
        };
        let mut found: [Option<Bound<'py, PyAny>>; 2] = [None, None];
        for pair in headers.iter() {
            let Ok(pair) = pair.downcast::<PyTuple>() else {
                return Ok(None);
            };
            if pair.len() != 2 {
                return Ok(None);
            }
            let name = pair.get_item(0)?;
            let which = match names.get(&(name.as_ptr() as usize)) {
                Some(&w) => w,
                None => {
                    let Ok(s) = name.downcast::<PyString>() else {
                        return Ok(None);
                    };
                    let Ok(text) = s.to_str() else {
                        return Ok(None);
                    };
                    let w = match text {
                        "ce_tenant" => 1,
                        "ce_type" => 2,
                        _ => 0,
                    };
                    // the record list keeps the name object alive: its address stays its own
                    names.insert(name.as_ptr() as usize, w);
                    w
                }
            };
            if which > 0 {
                let value = pair.get_item(1)?;
                if !value.is_none() && !value.is_instance_of::<PyBytes>() {
                    return Ok(None);
                }
                found[(which - 1) as usize] = Some(value);
            }
        }
        for k in 0..2 {
            let (ptr, value) = match &found[k] {
                Some(v) => (v.as_ptr() as usize, Some(v)),
                None => (none_ptr, None),
            };
            let idx = match by_object[k].get(&ptr) {
                Some(&i) => i,
                None => {
                    let content: Option<Vec<u8>> = match value {
                        Some(v) if !v.is_none() => Some(
                            v.downcast::<PyBytes>()
                                .map(|b| b.as_bytes().to_vec())
                                .unwrap_or_default(),
                        ),
                        _ => None,
                    };
                    let next = distinct[k].len() as u32;
                    let i = *by_value[k].entry(content.clone()).or_insert(next);
                    if i == next {
                        distinct[k].push(match content {
                            Some(c) => PyBytes::new(py, &c).into_any().unbind(),
                            None => py.None(),
                        });
                    }
                    by_object[k].insert(ptr, i);
                    i
                }
            };
            if k == 0 {
                tenant_idx.extend_from_slice(&idx.to_le_bytes());
            } else {
                type_idx.extend_from_slice(&idx.to_le_bytes());
            }
        }
        // keep the values alive until the end of the call (their addresses are cache keys)
    }
    let [tenants, types] = distinct;
    Ok(Some(PyTuple::new(
        py,
        [
            PyBytes::new(py, &offsets).into_any(),
            PyBytes::new(py, &tenant_idx).into_any(),
            PyBytes::new(py, &type_idx).into_any(),
            PyList::new(py, tenants)?.into_any(),
            PyList::new(py, types)?.into_any(),
        ],
    )?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(avro_columns, m)?)?;
    m.add_function(wrap_pyfunction!(envelope_columns, m)?)?;
    Ok(())
}
