//! `seal_batch` (aead_seal.rs) with the bound AAD of every value built here rather than in
//! Python: `core.ports.keystore.bind_subject(subject, header, aad)` is
//! `len(header) header len(subject) subject len(aad) aad` (lengths 4-byte big-endian, the
//! subject in UTF-8), so the caller hands the distinct subjects (one per key) and each value's
//! own AAD. The reference is `adapters/_aead.py`'s Python path (`bind_subject` per distinct
//! (subject, AAD), then `_seal_many_py`); `tests/unit/test_native_seal_bound.py` checks both
//! give the same bytes given the same nonces. Anything but the plain case (a key that is not 32
//! bytes, an object that is not exact `bytes` / `str`, a subject without UTF-8, a key index out
//! of range, lengths that do not agree) answers None and the reference runs and raises.
use crate::aead_seal::{cipher_and_head, seal_one, seal_values};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

fn put_len(out: &mut Vec<u8>, n: usize) -> Option<()> {
    out.extend_from_slice(&u32::try_from(n).ok()?.to_be_bytes());
    Some(())
}

/// `headers[k] + nonce_i + AES-256-GCM(keys[k], nonce_i, plaintexts[i],
/// bind_subject(subjects[k], headers[k], aads[i]))` with `k = key_of[i]`, for every value i.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn seal_batch_bound<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyList>,
    headers: &Bound<'py, PyList>,
    subjects: &Bound<'py, PyList>,
    key_of: &Bound<'py, PyList>,
    plaintexts: &Bound<'py, PyList>,
    aads: &Bound<'py, PyList>,
    nonces: &Bound<'py, PyBytes>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    if keys.len() != headers.len() || keys.len() != subjects.len() {
        return Ok(None);
    }
    let mut ciphers = Vec::with_capacity(keys.len());
    let mut heads: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    let mut prefixes: Vec<Vec<u8>> = Vec::with_capacity(keys.len()); // the AAD before aads[i]
    for ((k, h), s) in keys.iter().zip(headers.iter()).zip(subjects.iter()) {
        let Some((c, h)) = cipher_and_head(&k, &h) else {
            return Ok(None);
        };
        if !s.is_exact_instance_of::<PyString>() {
            return Ok(None);
        }
        let Ok(s) = s.downcast::<PyString>()?.to_str() else {
            return Ok(None); // no UTF-8 (a lone surrogate): the reference's encode() raises
        };
        let mut prefix = Vec::with_capacity(12 + h.len() + s.len());
        if put_len(&mut prefix, h.len()).is_none() {
            return Ok(None);
        }
        prefix.extend_from_slice(&h);
        if put_len(&mut prefix, s.len()).is_none() {
            return Ok(None);
        }
        prefix.extend_from_slice(s.as_bytes());
        ciphers.push(c);
        heads.push(h);
        prefixes.push(prefix);
    }
    let mut bound: Vec<u8> = Vec::new();
    seal_values(
        py,
        ciphers.len(),
        key_of,
        plaintexts,
        aads,
        nonces,
        |ki, nonce, plain, aad| {
            bound.clear();
            bound.extend_from_slice(&prefixes[ki]);
            if put_len(&mut bound, aad.len()).is_none() {
                return Ok(None);
            }
            bound.extend_from_slice(aad);
            seal_one(py, &ciphers[ki], &heads[ki], nonce, plain, &bound)
        },
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(seal_batch_bound, m)?)
}
