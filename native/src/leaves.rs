//! Ledger leaves straight from log records: the version-1 leaf input of `audit/leaf.py` built
//! and hashed per record in one call per batch (no per-record Python). The pure-Python
//! reference is `audit.leaf.encode` (and `ledger.leaves.LeafEncoder`'s column-wise path);
//! `tests/unit/test_native_leaves.py` checks both give the same bytes on random records.
//!
//! Anything unusual (a field of another type, a value out of range, a name that is not valid
//! UTF-8, a length over the format's limits) returns None: the caller then takes the Python
//! path, which raises the reference's own error. So errors never differ.
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;

/// Appends `0x01 || SHA-256(data)` for bytes, `0x00` for None; false for anything else.
fn digest_field(obj: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> bool {
    if obj.is_none() {
        buf.push(0x00);
        return true;
    }
    match obj.downcast::<PyBytes>() {
        Ok(b) => {
            buf.push(0x01);
            buf.extend_from_slice(&Sha256::digest(b.as_bytes()));
            true
        }
        Err(_) => false,
    }
}

/// Appends one record's leaf input to `buf`; Ok(false) when the record needs the Python path.
fn leaf_input(py: Python<'_>, rec: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> PyResult<bool> {
    let topic_obj = rec.getattr(intern!(py, "topic"))?;
    let Ok(topic) = topic_obj.downcast::<PyString>() else {
        return Ok(false);
    };
    let Ok(topic) = topic.to_str() else {
        return Ok(false);
    };
    if topic.len() > 0xFFFF {
        return Ok(false);
    }
    let Ok(part) = rec.getattr(intern!(py, "partition"))?.extract::<u32>() else {
        return Ok(false);
    };
    let Ok(offset) = rec.getattr(intern!(py, "offset"))?.extract::<u64>() else {
        return Ok(false);
    };
    let Ok(ts) = rec.getattr(intern!(py, "timestamp_ms"))?.extract::<i64>() else {
        return Ok(false);
    };
    buf.push(VERSION);
    buf.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(&part.to_be_bytes());
    buf.extend_from_slice(&offset.to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    if !digest_field(&rec.getattr(intern!(py, "key"))?, buf) {
        return Ok(false);
    }
    let headers = rec.getattr(intern!(py, "headers"))?;
    let pairs: Vec<Bound<'_, PyAny>> = if let Ok(t) = headers.downcast::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = headers.downcast::<PyList>() {
        l.iter().collect()
    } else {
        return Ok(false);
    };
    if pairs.len() > u32::MAX as usize {
        return Ok(false);
    }
    buf.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    for pair in &pairs {
        let Ok(pair) = pair.downcast::<PyTuple>() else {
            return Ok(false);
        };
        if pair.len() != 2 {
            return Ok(false);
        }
        let name = pair.get_item(0)?;
        let value = pair.get_item(1)?;
        let Ok(name) = name.downcast::<PyString>() else {
            return Ok(false);
        };
        let Ok(name) = name.to_str() else {
            return Ok(false);
        };
        let Ok(value) = value.downcast::<PyBytes>() else {
            return Ok(false);
        };
        let value = value.as_bytes();
        if name.len() > 0xFFFF || value.len() > u32::MAX as usize {
            return Ok(false);
        }
        buf.extend_from_slice(&(name.len() as u16).to_be_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&(value.len() as u32).to_be_bytes());
        buf.extend_from_slice(value);
    }
    Ok(digest_field(&rec.getattr(intern!(py, "value"))?, buf))
}

/// The leaf input of every record (objects with topic, partition, offset, timestamp_ms, key,
/// headers, value), or None when one of them needs the Python path.
#[pyfunction]
fn record_leaf_inputs<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let out = PyList::empty(py);
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    for rec in records.iter() {
        buf.clear();
        if !leaf_input(py, &rec, &mut buf)? {
            return Ok(None);
        }
        out.append(PyBytes::new(py, &buf))?;
    }
    Ok(Some(out))
}

/// RFC 9162 leaf hashes `SHA-256(0x00 || leaf input)` of every record, packed back to back
/// (32 bytes each), or None when one of them needs the Python path.
#[pyfunction]
fn record_leaf_hashes<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut out: Vec<u8> = Vec::with_capacity(records.len() * 32);
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    for rec in records.iter() {
        buf.clear();
        buf.push(0x00);
        if !leaf_input(py, &rec, &mut buf)? {
            return Ok(None);
        }
        out.extend_from_slice(&Sha256::digest(&buf));
    }
    Ok(Some(PyBytes::new(py, &out)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(record_leaf_inputs, m)?)?;
    m.add_function(wrap_pyfunction!(record_leaf_hashes, m)?)?;
    Ok(())
}
