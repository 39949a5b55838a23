//! Substring presence over a JSON-lines batch (`ingest/arrowread.py`, `_missing`): whether a
//! field's quoted name occurs anywhere in the batch's bytes. CPython's `bytes.__contains__`
//! runs ~1 ms per 2 MB batch on such needles (their closing `"` is the commonest byte of JSON,
//! which defeats its skip table); std's `str::contains` has an SSE2 path for short needles.
//! Only UTF-8 data is searched (validated here, never assumed): anything else answers None and
//! the caller's `in` decides. `tests/unit/test_native_find_text.py` checks both agree.
use pyo3::prelude::*;

/// Whether `needle` occurs in `data`; None if `data` is not UTF-8.
#[pyfunction]
fn contains_text(py: Python<'_>, data: &[u8], needle: &str) -> Option<bool> {
    py.allow_threads(|| Some(std::str::from_utf8(data).ok()?.contains(needle)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(contains_text, m)?)
}
