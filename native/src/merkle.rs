//! RFC 9162 Merkle hashing in batches: one call per batch instead of one `hashlib` call per
//! leaf or node. The pure-Python reference is `core.hashing` (`leaf_hashes_py`, `parents_py`);
//! `tests/unit/test_native_merkle.py` checks both give the same bytes.
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use sha2::{Digest, Sha256};

const LEAF: [u8; 1] = [0x00];
const NODE: [u8; 1] = [0x01];

/// `SHA-256(0x00 || item)` of every item of a list of bytes, packed back to back (32 bytes each).
#[pyfunction]
fn leaf_hashes<'py>(py: Python<'py>, items: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out: Vec<u8> = Vec::with_capacity(items.len() * 32);
    for item in items.iter() {
        let data = item
            .downcast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("leaf_hashes takes a list of bytes."))?;
        let mut h = Sha256::new();
        h.update(LEAF);
        h.update(data.as_bytes());
        out.extend_from_slice(&h.finalize());
    }
    Ok(PyBytes::new(py, &out))
}

/// The parents of consecutive pairs of 32-byte nodes given back to back:
/// `SHA-256(0x01 || left || right)` per complete pair (a trailing odd node has no parent here).
#[pyfunction]
fn parents<'py>(py: Python<'py>, nodes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let pairs = nodes.len() / 64;
    let mut out: Vec<u8> = Vec::with_capacity(pairs * 32);
    for pair in nodes.chunks_exact(64) {
        let mut h = Sha256::new();
        h.update(NODE);
        h.update(pair);
        out.extend_from_slice(&h.finalize());
    }
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(leaf_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(parents, m)?)?;
    Ok(())
}
