//! The line starts of a block of lines (`ingest/lines.py`, `Lines.block`): 0 and one past every
//! `\n`, as numpy's `flatnonzero(a == 0x0A) + 1` gives them (the reference, kept and tested in
//! tests/unit/test_lines.py). That reference builds a boolean temporary as long as the block
//! (4 MiB per JSON-lines or CSV block: fresh pages each time) and scans it again; here libc's
//! `memchr` (vectorised) jumps from line end to line end and only the offsets are written.
//! The GIL is kept: the walk takes well under a millisecond per block, less than a hand-over
//! to a waiting thread and back costs in CPU (session 20's attempt released it).
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::os::raw::{c_int, c_void};

extern "C" {
    fn memchr(s: *const c_void, c: c_int, n: usize) -> *mut c_void;
}

/// 0, then the offset after each `\n` of `data`, ascending, as little-endian 64-bit integers.
#[pyfunction]
fn line_starts<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    let mut out: Vec<u8> = Vec::with_capacity(8 + data.len() / 8);
    out.extend_from_slice(&0i64.to_le_bytes());
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        // SAFETY: `rest` is a live slice; memchr reads at most `rest.len()` bytes of it and
        // answers null or a pointer into it.
        let hit = unsafe { memchr(rest.as_ptr().cast(), b'\n' as c_int, rest.len()) };
        if hit.is_null() {
            break;
        }
        at += hit as usize - rest.as_ptr() as usize + 1;
        out.extend_from_slice(&(at as i64).to_le_bytes());
    }
    PyBytes::new(py, &out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(line_starts, m)?)
}
