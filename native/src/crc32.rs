//! CRC-32 (the zlib polynomial) of a stored batch read back (`adapters/sqlite_log/batch.py`,
//! `open_batch`): every read of the embedded log checks it. `crc32fast` picks its PCLMULQDQ
//! path at run time, several times the speed of the zlib `crc32` CPython links; `zlib.crc32`
//! stays the reference (`tests/unit/test_native_crc32.py` compares them on random data).
use pyo3::prelude::*;

/// `zlib.crc32(data[start:])` of a `bytes` object (no copy of the slice), the GIL released
/// while it runs; None when `start` is past the end.
#[pyfunction]
fn crc32_from(py: Python<'_>, data: &[u8], start: usize) -> Option<u32> {
    let tail = data.get(start..)?;
    Some(py.allow_threads(|| crc32fast::hash(tail)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crc32_from, m)?)
}
