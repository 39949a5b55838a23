//! The header section of the embedded log's stored batch (`adapters/sqlite_log/batch.py`), in
//! one pass: per-record header counts, the distinct names, the distinct (name, value) pairs and
//! each header's pair index. The pure-Python reference is `batch._encode_headers_py`;
//! `tests/unit/test_native_headers.py` checks both give the same bytes on random batches.
//!
//! Returns `None` for anything but the plain case (a pair that is not a 2-tuple of str and
//! bytes, a name that is not valid UTF-8, a limit exceeded): the reference then runs and raises
//! its own error, so errors never differ.
use std::collections::HashMap;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyBytes, PyList, PyString, PyTuple};

const U16: usize = 0xFFFF;

fn put_u16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u16).to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_le_bytes());
}

/// A name table: the u16 count, each name's u16 length, the names (both layouts start so).
fn put_names(out: &mut Vec<u8>, names: &[&[u8]]) {
    put_u16(out, names.len());
    for s in names {
        put_u16(out, s.len());
    }
    for s in names {
        out.extend_from_slice(s);
    }
}

/// Byte strings as each one's u32 length, then the strings back to back.
fn put_blobs<'a>(out: &mut Vec<u8>, blobs: impl Iterator<Item = &'a [u8]> + Clone) {
    for v in blobs.clone() {
        put_u32(out, v.len());
    }
    for v in blobs {
        out.extend_from_slice(v);
    }
}

/// The bytes of a `bytes` object, borrowed for the call (the list holds every object).
unsafe fn bytes_of<'a>(o: *mut ffi::PyObject) -> &'a [u8] {
    let p = ffi::PyBytes_AsString(o) as *const u8;
    let n = ffi::PyBytes_Size(o) as usize;
    std::slice::from_raw_parts(p, n)
}

/// The UTF-8 of an exact `str`, or `None` when it has none (a lone surrogate; the error is
/// cleared: the reference then decides).
unsafe fn utf8_of<'a>(o: *mut ffi::PyObject) -> Option<&'a [u8]> {
    let mut size: ffi::Py_ssize_t = 0;
    let p = ffi::PyUnicode_AsUTF8AndSize(o, &mut size);
    if p.is_null() {
        ffi::PyErr_Clear();
        return None;
    }
    Some(std::slice::from_raw_parts(p as *const u8, size as usize))
}

/// Whether `o` (a live object) is exactly of type `t`, not a subclass.
unsafe fn is_exact(o: *mut ffi::PyObject, t: *mut ffi::PyTypeObject) -> bool {
    ffi::Py_TYPE(o) == t
}

/// The name and value objects of a header pair when it is the plain case both encoders take,
/// an exact 2-tuple of an exact `str` and exact `bytes`; `None` otherwise (the reference then
/// decides). Borrowed references: `pair` must stay alive (the caller's list holds it).
unsafe fn pair_parts(pair: *mut ffi::PyObject) -> Option<(*mut ffi::PyObject, *mut ffi::PyObject)> {
    if !is_exact(pair, std::ptr::addr_of_mut!(ffi::PyTuple_Type)) || ffi::PyTuple_Size(pair) != 2 {
        return None;
    }
    let name = ffi::PyTuple_GetItem(pair, 0);
    let value = ffi::PyTuple_GetItem(pair, 1);
    if !is_exact(name, std::ptr::addr_of_mut!(ffi::PyUnicode_Type))
        || !is_exact(value, std::ptr::addr_of_mut!(ffi::PyBytes_Type))
    {
        return None;
    }
    Some((name, value))
}

/// `(section bytes, wide pair indices)` for `headers` (a list of per-record header tuples or
/// lists), or `None` when the reference must decide (see the module comment).
#[pyfunction]
fn encode_headers<'py>(
    py: Python<'py>,
    headers: &Bound<'py, PyList>,
) -> PyResult<Option<(Bound<'py, PyBytes>, bool)>> {
    let n = headers.len();
    let mut counts: Vec<usize> = Vec::with_capacity(n);
    let mut names: Vec<&[u8]> = Vec::new();
    let mut name_index: HashMap<&[u8], usize> = HashMap::new();
    let mut pair_names: Vec<usize> = Vec::new();
    let mut pair_values: Vec<&[u8]> = Vec::new();
    let mut pair_index: HashMap<(&[u8], &[u8]), usize> = HashMap::new();
    // Most pairs are the very same objects record after record (shared envelope headers):
    // an identity cache skips hashing their contents.
    let mut by_identity: HashMap<(usize, usize), usize> = HashMap::new();
    let mut flat: Vec<usize> = Vec::with_capacity(n * 12);
    let list = headers.as_ptr();
    // SAFETY: the GIL is held for the whole call and `headers` keeps every record, pair, name
    // and value alive; only borrowed references of the stable C API are read, never stored.
    unsafe {
        for r in 0..n {
            let record = ffi::PyList_GetItem(list, r as ffi::Py_ssize_t);
            let is_tuple = ffi::PyTuple_Check(record) != 0;
            if !is_tuple && ffi::PyList_Check(record) == 0 {
                return Ok(None);
            }
            let m = if is_tuple {
                ffi::PyTuple_Size(record)
            } else {
                ffi::PyList_Size(record)
            };
            counts.push(m as usize);
            for k in 0..m {
                let pair = if is_tuple {
                    ffi::PyTuple_GetItem(record, k)
                } else {
                    ffi::PyList_GetItem(record, k)
                };
                let Some((name_obj, value_obj)) = pair_parts(pair) else {
                    return Ok(None);
                };
                let id = (name_obj as usize, value_obj as usize);
                if let Some(&idx) = by_identity.get(&id) {
                    flat.push(idx);
                    continue;
                }
                let Some(name) = utf8_of(name_obj) else {
                    return Ok(None); // not valid UTF-8 (a lone surrogate): the reference names it
                };
                let value = bytes_of(value_obj);
                let next = pair_values.len();
                let idx = *pair_index.entry((name, value)).or_insert(next);
                if idx == next {
                    let ni = match name_index.get(name) {
                        Some(&i) => i,
                        None => {
                            names.push(name);
                            name_index.insert(name, names.len() - 1);
                            names.len() - 1
                        }
                    };
                    pair_names.push(ni);
                    pair_values.push(value);
                }
                by_identity.insert(id, idx);
                flat.push(idx);
            }
        }
    }
    let max_count = counts.iter().copied().max().unwrap_or(0);
    let max_name = names.iter().map(|s| s.len()).max().unwrap_or(0);
    if max_count > U16 || names.len() > U16 || max_name > U16 {
        return Ok(None);
    }
    if pair_values.iter().any(|v| v.len() > u32::MAX as usize) {
        return Ok(None);
    }
    let wide = pair_values.len() > U16;
    let mut out: Vec<u8> = Vec::with_capacity(
        2 * n
            + 2
            + (2 + max_name) * names.len()
            + 6 * pair_values.len()
            + pair_values.iter().map(|v| v.len()).sum::<usize>()
            + 4 * flat.len(),
    );
    for &c in counts.iter() {
        put_u16(&mut out, c);
    }
    put_names(&mut out, &names);
    put_u32(&mut out, pair_values.len());
    for &ni in pair_names.iter() {
        put_u16(&mut out, ni);
    }
    put_blobs(&mut out, pair_values.iter().copied());
    for &i in flat.iter() {
        if wide {
            put_u32(&mut out, i);
        } else {
            put_u16(&mut out, i);
        }
    }
    Ok(Some((PyBytes::new(py, &out), wide)))
}

/// The header section in format 2's column layout, the bytes `batch._encode_header_columns`
/// appends, in one pass over the records; `None` whenever that reference might do anything else
/// (records that are not exact tuples of the same width, a pair that is not an exact 2-tuple
/// of `str` and `bytes`, names that differ down a column, a name that is not valid UTF-8 or
/// too long): the reference then runs and decides, so the layout chosen never differs.
/// The envelope's shared pairs are the same objects record after record, so most comparisons
/// are pointer comparisons.
#[pyfunction]
fn encode_header_columns<'py>(
    py: Python<'py>,
    headers: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let n = headers.len();
    if n == 0 {
        return Ok(None);
    }
    let list = headers.as_ptr();
    // SAFETY: the GIL is held for the whole call and `headers` keeps every record, pair, name
    // and value alive; only borrowed references of the stable C API are read, never stored
    // past the call.
    unsafe {
        let tuple_type = std::ptr::addr_of_mut!(ffi::PyTuple_Type);
        let first = ffi::PyList_GetItem(list, 0);
        if ffi::Py_TYPE(first) != tuple_type {
            return Ok(None);
        }
        let m = ffi::PyTuple_Size(first) as usize;
        if m == 0 || m > U16 {
            return Ok(None);
        }
        let mut name_objs: Vec<*mut ffi::PyObject> = Vec::with_capacity(m);
        let mut names: Vec<&[u8]> = Vec::with_capacity(m);
        let mut constant: Vec<bool> = vec![true; m];
        // every record's value objects, row-major (read again to write the varying columns)
        let mut values: Vec<*mut ffi::PyObject> = Vec::with_capacity(n * m);
        for k in 0..m {
            let Some((name, value)) = pair_parts(ffi::PyTuple_GetItem(first, k as ffi::Py_ssize_t))
            else {
                return Ok(None);
            };
            let Some(text) = utf8_of(name) else {
                return Ok(None);
            };
            if text.len() > U16 || ffi::PyBytes_Size(value) as u64 > u32::MAX as u64 {
                return Ok(None);
            }
            name_objs.push(name);
            names.push(text);
            values.push(value);
        }
        for r in 1..n {
            let record = ffi::PyList_GetItem(list, r as ffi::Py_ssize_t);
            if ffi::Py_TYPE(record) != tuple_type || ffi::PyTuple_Size(record) as usize != m {
                return Ok(None);
            }
            for k in 0..m {
                let Some((name, value)) =
                    pair_parts(ffi::PyTuple_GetItem(record, k as ffi::Py_ssize_t))
                else {
                    return Ok(None);
                };
                if name != name_objs[k] {
                    match utf8_of(name) {
                        Some(text) if text == names[k] => {}
                        _ => return Ok(None),
                    }
                }
                let head = values[k];
                if value != head {
                    if ffi::PyBytes_Size(value) as u64 > u32::MAX as u64 {
                        return Ok(None);
                    }
                    if constant[k] && bytes_of(value) != bytes_of(head) {
                        constant[k] = false;
                    }
                }
                values.push(value);
            }
        }
        let mut size = 2 + 3 * m + names.iter().map(|s| s.len()).sum::<usize>();
        for k in 0..m {
            size += if constant[k] {
                4 + bytes_of(values[k]).len()
            } else {
                (0..n).map(|r| 4 + bytes_of(values[r * m + k]).len()).sum()
            };
        }
        let mut out: Vec<u8> = Vec::with_capacity(size);
        put_names(&mut out, &names);
        for &c in constant.iter() {
            out.push(if c { 0 } else { 1 });
        }
        for k in 0..m {
            if constant[k] {
                let v = bytes_of(values[k]);
                put_u32(&mut out, v.len());
                out.extend_from_slice(v);
            } else {
                put_blobs(&mut out, (0..n).map(|r| bytes_of(values[r * m + k])));
            }
        }
        debug_assert_eq!(out.len(), size);
        Ok(Some(PyBytes::new(py, &out)))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_headers, m)?)?;
    m.add_function(wrap_pyfunction!(encode_header_columns, m)?)?;
    m.add_function(wrap_pyfunction!(decode_headers, m)?)?;
    m.add_function(wrap_pyfunction!(decode_header_columns, m)?)?;
    Ok(())
}

// -- decoding ---------------------------------------------------------------------------------

/// A little-endian reader over the section that fails (ValueError) instead of reading past
/// the end: a section whose CRC matched can still be forged.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&self, at: usize, len: usize) -> PyResult<&'a [u8]> {
        match at.checked_add(len) {
            Some(end) if end <= self.buf.len() => Ok(&self.buf[at..end]),
            _ => Err(PyValueError::new_err(
                "the header section runs past the end of the batch",
            )),
        }
    }
    fn u16s(&self, at: usize, n: usize) -> PyResult<Vec<usize>> {
        let raw = self.bytes(at, n.checked_mul(2).unwrap_or(usize::MAX))?;
        Ok(raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize)
            .collect())
    }
    fn u32s(&self, at: usize, n: usize) -> PyResult<Vec<usize>> {
        let raw = self.bytes(at, n.checked_mul(4).unwrap_or(usize::MAX))?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect())
    }
}

/// The header section at `pos` of `body` (the layout `encode_headers` writes) as a list of one
/// tuple of `(name, value)` pairs per record, each distinct pair one shared tuple: what
/// `batch._decode_headers_py` returns, in one call per batch. Raises ValueError where the
/// reference raises (a section that does not parse).
#[pyfunction]
fn decode_headers<'py>(
    py: Python<'py>,
    body: &[u8],
    pos: usize,
    n: usize,
    wide: bool,
) -> PyResult<Bound<'py, PyList>> {
    let r = Reader { buf: body };
    let counts = r.u16s(pos, n)?;
    let mut at = pos + 2 * n;
    let t = r.u16s(at, 1)?[0];
    let name_lens = r.u16s(at + 2, t)?;
    at += 2 + 2 * t;
    let mut names: Vec<Bound<'py, PyString>> = Vec::with_capacity(t);
    for len in name_lens {
        let raw = r.bytes(at, len)?;
        let text = std::str::from_utf8(raw)
            .map_err(|e| PyValueError::new_err(format!("a header name is not UTF-8: {e}")))?;
        names.push(PyString::new(py, text));
        at += len;
    }
    let p = r.u32s(at, 1)?[0];
    let pair_names = r.u16s(at + 4, p)?;
    at += 4 + 2 * p;
    let value_lens = r.u32s(at, p)?;
    at += 4 * p;
    let mut pairs: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(p);
    for (ni, len) in pair_names.into_iter().zip(value_lens) {
        let value = r.bytes(at, len)?;
        at += len;
        let name = names
            .get(ni)
            .ok_or_else(|| PyIndexError::new_err("a header pair names a missing header name"))?;
        pairs.push(PyTuple::new(
            py,
            [name.clone().into_any(), PyBytes::new(py, value).into_any()],
        )?);
    }
    let h: usize = counts.iter().sum();
    let index = if wide { r.u32s(at, h)? } else { r.u16s(at, h)? };
    let mut records: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(n);
    let mut k = 0;
    for c in counts {
        let mut items: Vec<&Bound<'py, PyTuple>> = Vec::with_capacity(c);
        for &i in &index[k..k + c] {
            items.push(
                pairs
                    .get(i)
                    .ok_or_else(|| PyIndexError::new_err("a header names a missing pair"))?,
            );
        }
        k += c;
        records.push(PyTuple::new(py, items)?);
    }
    PyList::new(py, records)
}

/// The header section in format 2's column layout (`batch._encode_header_columns`) as a list
/// of one tuple of `(name, value)` pairs per record; a constant header is one pair tuple shared
/// by every record. What `batch._decode_header_columns` returns, in one call per batch; raises
/// ValueError where the reference raises.
#[pyfunction]
fn decode_header_columns<'py>(
    py: Python<'py>,
    body: &[u8],
    pos: usize,
    n: usize,
) -> PyResult<Bound<'py, PyList>> {
    let r = Reader { buf: body };
    let m = r.u16s(pos, 1)?[0];
    if m == 0 {
        return Err(PyValueError::new_err(
            "the header columns declare no header",
        ));
    }
    let name_lens = r.u16s(pos + 2, m)?;
    let mut at = pos + 2 + 2 * m;
    let names_start = at;
    at += name_lens.iter().sum::<usize>();
    let kinds = r.bytes(at, m)?;
    at += m;
    let mut name_at = names_start;
    // Per header: Ok(shared pair) for a constant, Err(values) for one value per record.
    let mut columns: Vec<Result<Bound<'py, PyTuple>, Vec<&[u8]>>> = Vec::with_capacity(m);
    let mut names: Vec<Bound<'py, PyString>> = Vec::with_capacity(m);
    for (len, &kind) in name_lens.iter().zip(kinds) {
        let text = std::str::from_utf8(r.bytes(name_at, *len)?)
            .map_err(|e| PyValueError::new_err(format!("a header name is not UTF-8: {e}")))?;
        name_at += len;
        let name = PyString::new(py, text);
        match kind {
            0 => {
                let size = r.u32s(at, 1)?[0];
                let value = r.bytes(at + 4, size)?;
                at += 4 + size;
                let pair = PyTuple::new(
                    py,
                    [name.clone().into_any(), PyBytes::new(py, value).into_any()],
                )?;
                columns.push(Ok(pair));
            }
            1 => {
                let lens = r.u32s(at, n)?;
                at += 4 * n;
                let mut values = Vec::with_capacity(n);
                for len in lens {
                    values.push(r.bytes(at, len)?);
                    at += len;
                }
                columns.push(Err(values));
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown header column kind {kind}"
                )))
            }
        }
        names.push(name);
    }
    let mut records: Vec<Bound<'py, PyTuple>> = Vec::with_capacity(n);
    let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(m);
    for i in 0..n {
        items.clear();
        for (column, name) in columns.iter().zip(&names) {
            items.push(match column {
                Ok(pair) => pair.clone().into_any(),
                Err(values) => PyTuple::new(
                    py,
                    [
                        name.clone().into_any(),
                        PyBytes::new(py, values[i]).into_any(),
                    ],
                )?
                .into_any(),
            });
        }
        records.push(PyTuple::new(py, items.iter())?);
    }
    PyList::new(py, records)
}
