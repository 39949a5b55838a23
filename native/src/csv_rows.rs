//! The CSV reader's two byte passes (`ingest/lines.py` `Lines.block`, `ingest/arrowread.py`
//! `csv_batch`), each with a Python/Arrow reference that gives the same bytes:
//! - `without_trailing_crs`: a region's lines with the CRs before each line end removed (all of
//!   a run of them; a CR inside a line stays), what `replace(b"\r\n", b"\n")`, then
//!   `_without_trailing_crs` when a run is left, then `rstrip(b"\r")` give, in one pass;
//! - `csv_split`: rows already checked to be a plain comma split (no quote or control byte,
//!   the header's number of commas) as one string column per field: what Arrow's `read_csv`
//!   (no quoting, every column a string, nothing null) gives for such rows. A row with another
//!   number of commas, or not UTF-8, makes it answer None: the caller's `read_csv` decides.
//! `tests/unit/test_native_json_rows.py` compares both with their references.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyfunction]
fn without_trailing_crs<'py>(py: Python<'py>, region: &[u8]) -> Bound<'py, PyBytes> {
    let out = py.allow_threads(|| {
        let mut out = Vec::with_capacity(region.len());
        let mut i = 0;
        while i < region.len() {
            // copy up to the next CR in one go (memchr-like: the common bytes are not CRs)
            let next = region[i..]
                .iter()
                .position(|&c| c == b'\r')
                .map_or(region.len(), |p| i + p);
            out.extend_from_slice(&region[i..next]);
            if next == region.len() {
                break;
            }
            let mut j = next;
            while j < region.len() && region[j] == b'\r' {
                j += 1;
            }
            if j < region.len() && region[j] != b'\n' {
                out.extend_from_slice(&region[next..j]); // inside a line: kept
            }
            i = j;
        }
        out
    });
    PyBytes::new(py, &out)
}

/// Rows `data[starts[i]:ends[i]]` (int64 native-endian arrays as bytes) split at their commas
/// into `ncols` string columns: per column (offsets int32 little-endian, data), or None when a
/// row has another number of commas or is not UTF-8.
#[pyfunction]
fn csv_split<'py>(
    py: Python<'py>,
    data: &[u8],
    starts: &[u8],
    ends: &[u8],
    ncols: usize,
) -> PyResult<Option<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>>> {
    if starts.len() != ends.len() || starts.len() % 8 != 0 || ncols == 0 {
        return Err(PyValueError::new_err(
            "csv_split: starts and ends must be int64 arrays of one length, ncols > 0",
        ));
    }
    let n = starts.len() / 8;
    let word = |b: &[u8], i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        let (s, e) = (word(starts, i), word(ends, i));
        if s < 0 || e < s || e as u64 > data.len() as u64 {
            return Err(PyValueError::new_err(format!(
                "csv_split: row {i} spans {s}..{e}, outside the data"
            )));
        }
        spans.push((s as usize, e as usize));
    }
    let cols = py.allow_threads(|| {
        let mut cols: Vec<(Vec<i32>, Vec<u8>)> = (0..ncols)
            .map(|_| {
                let mut offsets = Vec::with_capacity(n + 1);
                offsets.push(0i32);
                (offsets, Vec::new())
            })
            .collect();
        for &(s, e) in &spans {
            let row = &data[s..e];
            if std::str::from_utf8(row).is_err() {
                return None;
            }
            let mut k = 0;
            for field in row.split(|&c| c == b',') {
                let col = cols.get_mut(k)?; // more commas than the header's
                col.1.extend_from_slice(field);
                if col.1.len() > i32::MAX as usize {
                    return None;
                }
                col.0.push(col.1.len() as i32);
                k += 1;
            }
            if k != ncols {
                return None;
            }
        }
        Some(cols)
    });
    Ok(cols.map(|cols| {
        cols.into_iter()
            .map(|(offsets, text)| {
                let raw: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
                (PyBytes::new(py, &raw), PyBytes::new(py, &text))
            })
            .collect()
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(without_trailing_crs, m)?)?;
    m.add_function(wrap_pyfunction!(csv_split, m)?)
}
