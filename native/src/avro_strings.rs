//! `PiiField.encode_many` of a plain `string` PII column in one call: each value's Avro binary
//! encoding (zig-zag varint of its UTF-8 length, then the UTF-8 bytes), one new `bytes` each.
//! The reference is `core.pii.PiiField.encode_many_py` (and `encode`, value by value);
//! `tests/unit/test_pii_encode_many.py` checks the same bytes. Anything but a list of exact
//! `str` with UTF-8 (a lone surrogate, a subclass, another type) answers None: the reference
//! runs and gives fastavro's own answer or error.
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

/// Avro's varint of a non-negative length already zig-zag encoded (`n << 1`), into `buf`.
fn varint(mut z: u64, buf: &mut [u8; 10]) -> usize {
    let mut i = 0;
    while z >= 0x80 {
        buf[i] = (z as u8 & 0x7F) | 0x80;
        z >>= 7;
        i += 1;
    }
    buf[i] = z as u8;
    i + 1
}

#[pyfunction]
fn avro_string_many<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let mut out: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(values.len());
    let mut prefix = [0u8; 10];
    for v in values.iter() {
        if !v.is_exact_instance_of::<PyString>() {
            return Ok(None);
        }
        let Ok(s) = v.downcast::<PyString>()?.to_str() else {
            return Ok(None); // no UTF-8 (a lone surrogate): fastavro's answer, in Python
        };
        let data = s.as_bytes();
        let at = varint((data.len() as u64) << 1, &mut prefix);
        let encoded = PyBytes::new_with(py, at + data.len(), |buf: &mut [u8]| {
            buf[..at].copy_from_slice(&prefix[..at]);
            buf[at..].copy_from_slice(data);
            Ok(())
        })?;
        out.push(encoded);
    }
    Ok(Some(PyList::new(py, out)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(avro_string_many, m)?)
}
