//! The header section of the embedded log's stored batch (`adapters/sqlite_log/batch.py`), in
//! one pass: per-record header counts, the distinct names, the distinct (name, value) pairs and
//! each header's pair index. The pure-Python reference is `batch._encode_headers_py`;
//! `tests/unit/test_native_headers.py` checks both give the same bytes on random batches.
//!
//! Returns `None` for anything but the plain case (a pair that is not a 2-tuple of str and
//! bytes, a name that is not valid UTF-8, a limit exceeded): the reference then runs and raises
//! its own error, so errors never differ.
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

const U16: usize = 0xFFFF;

fn put_u16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u16).to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_le_bytes());
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
    // Borrowed views stay valid: every object is held by `headers` while the GIL is held.
    let mut names: Vec<&[u8]> = Vec::new();
    let mut name_index: HashMap<&[u8], usize> = HashMap::new();
    let mut pair_names: Vec<usize> = Vec::new();
    let mut pair_values: Vec<&[u8]> = Vec::new();
    let mut pair_index: HashMap<(&[u8], &[u8]), usize> = HashMap::new();
    let mut flat: Vec<usize> = Vec::with_capacity(n * 12);
    let owned: Vec<Bound<'py, PyAny>> = headers.iter().collect();
    let mut pairs_seen: Vec<Bound<'py, PyAny>> = Vec::with_capacity(n * 12);
    for record in owned.iter() {
        let items: Vec<Bound<'py, PyAny>> = if let Ok(t) = record.downcast::<PyTuple>() {
            t.iter().collect()
        } else if let Ok(l) = record.downcast::<PyList>() {
            l.iter().collect()
        } else {
            return Ok(None);
        };
        counts.push(items.len());
        pairs_seen.extend(items);
    }
    for pair in pairs_seen.iter() {
        let Ok(t) = pair.downcast_exact::<PyTuple>() else {
            return Ok(None);
        };
        if t.len() != 2 {
            return Ok(None);
        }
        let (Ok(name), Ok(value)) = (
            t.get_borrowed_item(0).map(|o| o.downcast_exact::<PyString>().is_ok()),
            t.get_borrowed_item(1).map(|o| o.downcast_exact::<PyBytes>().is_ok()),
        ) else {
            return Ok(None);
        };
        if !(name && value) {
            return Ok(None);
        }
    }
    // Second pass over the validated pairs, borrowing their contents.
    let tuples: Vec<&Bound<'py, PyTuple>> =
        pairs_seen.iter().map(|p| p.downcast_exact::<PyTuple>().unwrap()).collect();
    let mut name_objs: Vec<Bound<'py, PyAny>> = Vec::with_capacity(tuples.len());
    let mut value_objs: Vec<Bound<'py, PyAny>> = Vec::with_capacity(tuples.len());
    for t in tuples.iter() {
        name_objs.push(t.get_item(0)?);
        value_objs.push(t.get_item(1)?);
    }
    for (name_obj, value_obj) in name_objs.iter().zip(value_objs.iter()) {
        let name_str = name_obj.downcast_exact::<PyString>().unwrap();
        let Ok(name) = name_str.to_str() else {
            return Ok(None); // not valid UTF-8 (a lone surrogate): the reference names it
        };
        let name = name.as_bytes();
        let value = value_obj.downcast_exact::<PyBytes>().unwrap().as_bytes();
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
        flat.push(idx);
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
        2 * n + 2 + 2 * names.len() + max_name * names.len() + 6 * pair_values.len()
            + pair_values.iter().map(|v| v.len()).sum::<usize>()
            + 4 * flat.len(),
    );
    for &c in counts.iter() {
        put_u16(&mut out, c);
    }
    put_u16(&mut out, names.len());
    for s in names.iter() {
        put_u16(&mut out, s.len());
    }
    for s in names.iter() {
        out.extend_from_slice(s);
    }
    put_u32(&mut out, pair_values.len());
    for &ni in pair_names.iter() {
        put_u16(&mut out, ni);
    }
    for v in pair_values.iter() {
        put_u32(&mut out, v.len());
    }
    for v in pair_values.iter() {
        out.extend_from_slice(v);
    }
    for &i in flat.iter() {
        if wide {
            put_u32(&mut out, i);
        } else {
            put_u16(&mut out, i);
        }
    }
    Ok(Some((PyBytes::new(py, &out), wide)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_headers, m)?)?;
    Ok(())
}
