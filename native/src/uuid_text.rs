//! Batch UUIDv7 ids as their canonical 36-byte text (`ingest/ids.py`, `uuid7_bytes`): id `i`
//! takes the (millisecond, counter) slot `first + i` and the 62 random bits of `rand`'s u64 `i`
//! (little-endian). The numpy reference `ids._uuid7_text_py` is kept;
//! `tests/unit/test_native_uuid_text.py` checks both give the same ids from the same inputs.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(out: &mut [u8], v: u64, digits: usize, shift: u32) {
    for (k, b) in out.iter_mut().take(digits).enumerate() {
        let s = shift - 4 * k as u32;
        *b = HEX[((v >> s) & 0xF) as usize];
    }
}

/// The ids of slots `first` .. `first + n` (n = `len(rand) / 8`) as a list of `bytes`.
#[pyfunction]
fn uuid7_text<'py>(py: Python<'py>, first: u64, rand: &[u8]) -> PyResult<Bound<'py, PyList>> {
    if rand.len() % 8 != 0 {
        return Err(PyValueError::new_err("rand must hold 8 bytes per id"));
    }
    let n = rand.len() / 8;
    if first.checked_add(n as u64).is_none() {
        return Err(PyValueError::new_err("the slots run past 64 bits"));
    }
    let mut ids: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(n);
    let mut text = [b'-'; 36];
    for (i, chunk) in rand.chunks_exact(8).enumerate() {
        let slot = first + i as u64;
        let hi = ((slot >> 12) << 16) | 0x7000 | (slot & 0xFFF);
        let r = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let lo = (r & ((1u64 << 62) - 1)) | (2u64 << 62);
        put_hex(&mut text[0..8], hi, 8, 60);
        put_hex(&mut text[9..13], hi, 4, 28);
        put_hex(&mut text[14..18], hi, 4, 12);
        put_hex(&mut text[19..23], lo, 4, 60);
        put_hex(&mut text[24..36], lo, 12, 44);
        ids.push(PyBytes::new(py, &text));
    }
    PyList::new(py, ids)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(uuid7_text, m)?)
}
