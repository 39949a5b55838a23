//! The line ends of a block of lines (`ingest/lines.py`, `Lines.block`): the offsets of every
//! `\n`, as numpy's `flatnonzero(a == 0x0A)` gives them (the reference, kept and tested in
//! tests/unit/test_lines.py). That reference builds a boolean temporary as long as the block
//! (4 MiB per JSON-lines or CSV block) and scans it again; here libc's `memchr` (vectorised)
//! jumps from line end to line end and only the offsets are written.
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::raw::{c_int, c_void};

extern "C" {
    fn memchr(s: *const c_void, c: c_int, n: usize) -> *mut c_void;
}

/// The offsets of `\n` in `data`, ascending, as little-endian 64-bit integers.
#[pyfunction]
fn newline_offsets<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    let out: Vec<u8> = py.allow_threads(|| {
        let mut out: Vec<u8> = Vec::with_capacity(data.len() / 16);
        let mut at = 0usize;
        while at < data.len() {
            let rest = &data[at..];
            // SAFETY: `rest` is a live slice; memchr reads at most `rest.len()` bytes of it and
            // answers null or a pointer into it.
            let hit = unsafe { memchr(rest.as_ptr().cast(), b'\n' as c_int, rest.len()) };
            if hit.is_null() {
                break;
            }
            let found = at + (hit as usize - rest.as_ptr() as usize);
            out.extend_from_slice(&(found as i64).to_le_bytes());
            at = found + 1;
        }
        out
    });
    PyBytes::new(py, &out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(newline_offsets, m)?)
}
