//! A JSON batch body's `events` array as lines (`ingest/jsonsplit.py`, `event_lines`): every
//! separator `}, {` (or `},{`) made `}\n{`, and where each line starts, in one pass. The
//! reference is `bytes.replace` and `lines.line_starts` (kept, and tested equal in
//! tests/unit/test_jsonsplit.py): `replace` walks the array twice (a count, then the copy) and
//! the line starts a third time; here libc's `memchr` jumps from `}` to `}` once.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::raw::{c_int, c_void};

extern "C" {
    fn memchr(s: *const c_void, c: c_int, n: usize) -> *mut c_void;
}

/// `(inner.replace(sep, b"}\n{"), starts)`: `starts` is 0 and the offset after each `\n` of the
/// result, as little-endian 64-bit integers. `sep` MUST be `}, {` or `},{` (a `ValueError`
/// otherwise): they cannot overlap, so replacing left to right equals `bytes.replace`.
#[pyfunction]
fn json_array_lines<'py>(
    py: Python<'py>,
    inner: &[u8],
    sep: &[u8],
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    if sep != b"}, {" && sep != b"},{" {
        return Err(PyValueError::new_err("sep must be b'}, {' or b'},{'"));
    }
    let mut data: Vec<u8> = Vec::with_capacity(inner.len());
    let mut starts: Vec<u8> = Vec::with_capacity(8 + inner.len() / 16);
    starts.extend_from_slice(&0i64.to_le_bytes());
    let (mut at, mut from) = (0usize, 0usize);
    while at < inner.len() {
        let rest = &inner[at..];
        // SAFETY: `rest` is a live slice; memchr reads at most `rest.len()` bytes of it and
        // answers null or a pointer into it.
        let hit = unsafe { memchr(rest.as_ptr().cast(), b'}' as c_int, rest.len()) };
        if hit.is_null() {
            break;
        }
        let p = at + (hit as usize - rest.as_ptr() as usize);
        if inner[p..].starts_with(sep) {
            data.extend_from_slice(&inner[from..p]);
            data.extend_from_slice(b"}\n{");
            starts.extend_from_slice(&((data.len() - 1) as i64).to_le_bytes());
            from = p + sep.len();
            at = from;
        } else {
            at = p + 1;
        }
    }
    data.extend_from_slice(&inner[from..]);
    Ok((PyBytes::new(py, &data), PyBytes::new(py, &starts)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(json_array_lines, m)?)
}
