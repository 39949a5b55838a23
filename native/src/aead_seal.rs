//! AES-256-GCM sealing of a whole batch of values in one call: the keystores' envelope
//! (`adapters/_aead.py`: 5-byte header, 96-bit nonce, ciphertext and 16-byte tag), one output
//! `bytes` per value. The pure-Python reference is `_aead._seal_many_py` (one
//! `AESGCM.encrypt` per value); `tests/unit/test_native_seal.py` checks both give the same bytes
//! on random batches given the same nonces.
//!
//! The caller draws the nonces (`os.urandom`, 12 bytes per value) and binds the AADs; this
//! function only encrypts. Returns `None` for anything but the plain case (a key that is not 32
//! bytes, an object that is not exact `bytes`, a key index out of range, lengths that do not
//! agree): the reference then runs and raises its own error, so errors never differ.
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

pub(crate) const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The bytes of an exact `bytes` object, or `None` (the list that holds it keeps it alive).
pub(crate) fn bytes_of<'a>(o: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
    // SAFETY: an exact bytes object's buffer lives as long as the object it is borrowed from
    unsafe {
        if ffi::PyBytes_CheckExact(o.as_ptr()) == 0 {
            return None;
        }
        let p = ffi::PyBytes_AsString(o.as_ptr()) as *const u8;
        let n = ffi::PyBytes_Size(o.as_ptr()) as usize;
        Some(std::slice::from_raw_parts(p, n))
    }
}

/// `headers[key_of[i]] + nonce_i + AES-256-GCM(keys[key_of[i]], nonce_i, plaintexts[i],
/// aads[i])` for every value i, nonce_i being bytes 12i..12i+12 of `nonces`.
#[pyfunction]
fn seal_batch<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyList>,
    headers: &Bound<'py, PyList>,
    key_of: &Bound<'py, PyList>,
    plaintexts: &Bound<'py, PyList>,
    aads: &Bound<'py, PyList>,
    nonces: &Bound<'py, PyBytes>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    if keys.len() != headers.len() {
        return Ok(None);
    }
    let mut ciphers = Vec::with_capacity(keys.len());
    let mut heads: Vec<Vec<u8>> = Vec::with_capacity(keys.len());
    for (k, h) in keys.iter().zip(headers.iter()) {
        let Some((c, h)) = cipher_and_head(&k, &h) else {
            return Ok(None);
        };
        ciphers.push(c);
        heads.push(h);
    }
    seal_values(
        py,
        ciphers.len(),
        key_of,
        plaintexts,
        aads,
        nonces,
        |ki, nonce, plain, aad| seal_one(py, &ciphers[ki], &heads[ki], nonce, plain, aad),
    )
}

/// The AES-256-GCM cipher of a 32-byte key and a copy of its envelope header, or `None`.
pub(crate) fn cipher_and_head(
    key: &Bound<'_, PyAny>,
    head: &Bound<'_, PyAny>,
) -> Option<(Aes256Gcm, Vec<u8>)> {
    let (k, h) = (bytes_of(key)?, bytes_of(head)?);
    (k.len() == 32).then(|| {
        (
            Aes256Gcm::new_from_slice(k).expect("a 32-byte key"),
            h.to_vec(),
        )
    })
}

/// `seal(k, nonce_i, plaintexts[i], aads[i])` for every value i, `k = key_of[i]` below
/// `n_keys`, nonce_i being bytes 12i..12i+12 of `nonces`: the per-value checks both sealers
/// share. `None` when lengths disagree, an index is out of range, an item is not exact
/// `bytes`, or `seal` answers `None`.
pub(crate) fn seal_values<'py>(
    py: Python<'py>,
    n_keys: usize,
    key_of: &Bound<'py, PyList>,
    plaintexts: &Bound<'py, PyList>,
    aads: &Bound<'py, PyList>,
    nonces: &Bound<'py, PyBytes>,
    mut seal: impl FnMut(usize, &[u8], &[u8], &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let n = plaintexts.len();
    let nonces = nonces.as_bytes();
    if key_of.len() != n || aads.len() != n || nonces.len() != NONCE_LEN * n {
        return Ok(None);
    }
    let mut out: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(n);
    for i in 0..n {
        let ki = key_of.get_item(i)?;
        let Ok(ki) = ki.extract::<usize>() else {
            return Ok(None);
        };
        if ki >= n_keys {
            return Ok(None);
        }
        let p = plaintexts.get_item(i)?;
        let a = aads.get_item(i)?;
        let (Some(plain), Some(aad)) = (bytes_of(&p), bytes_of(&a)) else {
            return Ok(None);
        };
        let nonce = &nonces[NONCE_LEN * i..NONCE_LEN * (i + 1)];
        let Some(sealed) = seal(ki, nonce, plain, aad)? else {
            return Ok(None);
        };
        out.push(sealed);
    }
    Ok(Some(PyList::new(py, out)?))
}

/// `head + nonce + AES-256-GCM(cipher, nonce, plain, aad)` as one new `bytes`, or `None` past
/// GCM's length limit (the reference then decides).
pub(crate) fn seal_one<'py>(
    py: Python<'py>,
    cipher: &Aes256Gcm,
    head: &[u8],
    nonce: &[u8],
    plain: &[u8],
    aad: &[u8],
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let at = head.len() + NONCE_LEN;
    let total = at + plain.len() + TAG_LEN;
    let mut failed = false;
    let sealed = PyBytes::new_with(py, total, |buf: &mut [u8]| {
        buf[..head.len()].copy_from_slice(head);
        buf[head.len()..at].copy_from_slice(nonce);
        let (body, tag) = buf[at..].split_at_mut(plain.len());
        body.copy_from_slice(plain);
        match cipher.encrypt_in_place_detached(Nonce::from_slice(nonce), aad, body) {
            Ok(t) => tag.copy_from_slice(&t),
            Err(_) => failed = true,
        }
        Ok(())
    })?;
    Ok((!failed).then_some(sealed))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(seal_batch, m)?)?;
    Ok(())
}
