//! The CSV reader's two byte passes (`ingest/lines.py` `Lines.block`, `ingest/arrowread.py`
//! `csv_batch`), each with a Python/Arrow reference that gives the same bytes:
//! - `without_trailing_crs`: a region's lines with the CRs before each line end removed (all of
//!   a run of them; a CR inside a line stays), what `replace(b"\r\n", b"\n")`, then
//!   `_without_trailing_crs` when a run is left, then `rstrip(b"\r")` give, in one pass;
//! - `csv_split`: rows already checked to be a plain comma split (no quote or control byte,
//!   the header's number of commas) as one string column per field: what Arrow's `read_csv`
//!   (no quoting, every column a string, nothing null) gives for such rows. A row with another
//!   number of commas, or not UTF-8, makes it answer None: the caller's `read_csv` decides.
//! - `decimal_text`: a CSV decimal column's texts of the strict form as decimal128 values (the
//!   regex and cast of `_csv_column`).
//! `tests/unit/test_native_json_rows.py` compares each with its reference.
use pyo3::buffer::PyBuffer;
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
    let spans = row_spans("csv_split", data, starts, ends)?;
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

/// The rows' (start, end) pairs from `starts` and `ends` (int64 arrays of one length, checked by
/// the caller), each inside `data`; `what` names the caller in the error.
pub(crate) fn row_spans(
    what: &str,
    data: &[u8],
    starts: &[u8],
    ends: &[u8],
) -> PyResult<Vec<(usize, usize)>> {
    let n = starts.len() / 8;
    let word = |b: &[u8], i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        let (s, e) = (word(starts, i), word(ends, i));
        if s < 0 || e < s || e as u64 > data.len() as u64 {
            return Err(PyValueError::new_err(format!(
                "{what}: row {i} spans {s}..{e}, outside the data"
            )));
        }
        spans.push((s as usize, e as usize));
    }
    Ok(spans)
}

/// A buffer's bytes (Arrow's buffers export the buffer protocol, read-only and contiguous).
fn bytes_of<'a>(what: &str, b: Option<&'a PyBuffer<i8>>) -> PyResult<&'a [u8]> {
    match b {
        None => Ok(&[]),
        Some(b) if !b.is_c_contiguous() => Err(PyValueError::new_err(format!(
            "{what}: a non-contiguous buffer"
        ))),
        // SAFETY: the buffer view is held (and its exporter alive) for the whole call.
        Some(b) => {
            Ok(unsafe { std::slice::from_raw_parts(b.buf_ptr() as *const u8, b.len_bytes()) })
        }
    }
}

/// An Arrow string column's buffers (`offsets` int32, `data`, `valid` bitmap or None) as bytes,
/// read by row; `what` names the caller in every error.
pub(crate) struct Strings<'a> {
    offsets: &'a [u8],
    data: &'a [u8],
    valid: Option<&'a [u8]>,
    what: &'static str,
}

impl<'a> Strings<'a> {
    pub(crate) fn of(
        what: &'static str,
        offsets: &'a PyBuffer<i8>,
        data: Option<&'a PyBuffer<i8>>,
        valid: Option<&'a PyBuffer<i8>>,
    ) -> PyResult<Self> {
        Ok(Strings {
            offsets: bytes_of(what, Some(offsets))?,
            data: bytes_of(what, data)?,
            valid: valid.map(|v| bytes_of(what, Some(v))).transpose()?,
            what,
        })
    }

    /// That the offsets and the bitmap reach row `offset + n` (rows `offset..offset + n` read).
    pub(crate) fn covers(&self, offset: usize, n: usize) -> PyResult<()> {
        let end = offset.checked_add(n).and_then(|e| e.checked_add(1));
        if end.is_none_or(|e| self.offsets.len() < e * 4) {
            return Err(PyValueError::new_err(format!(
                "{}: the offsets do not cover the rows",
                self.what
            )));
        }
        if self.valid.is_some_and(|v| v.len() * 8 < offset + n) {
            return Err(PyValueError::new_err(format!(
                "{}: the validity bitmap does not cover the rows",
                self.what
            )));
        }
        Ok(())
    }

    /// Row `j`'s bytes, `None` where it is null; `Err` where its offsets leave the data
    /// (`outside` words it: no text is made in the readers' loops).
    #[inline]
    pub(crate) fn get(&self, j: usize) -> Result<Option<&'a [u8]>, ()> {
        if self.valid.is_some_and(|v| v[j / 8] >> (j % 8) & 1 == 0) {
            return Ok(None);
        }
        let at = |i: usize| i32::from_le_bytes(self.offsets[i * 4..i * 4 + 4].try_into().unwrap());
        let (s, e) = (at(j), at(j + 1));
        if s < 0 || e < s || e as usize > self.data.len() {
            return Err(());
        }
        Ok(Some(&self.data[s as usize..e as usize]))
    }

    /// The error of a row whose offsets leave the data.
    pub(crate) fn outside(&self) -> PyErr {
        PyValueError::new_err(format!(
            "{}: a string's offsets are outside the data",
            self.what
        ))
    }
}

/// `-?[0-9]{1,p-s}(\.[0-9]{1,s})?` (`-?[0-9]{1,p}` for scale 0): the unscaled value at `scale`.
fn decimal(b: &[u8], precision: usize, scale: usize) -> Option<i128> {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let dot = digits.iter().position(|&c| c == b'.');
    let (int, frac) = match dot {
        Some(d) if scale > 0 => (&digits[..d], &digits[d + 1..]),
        Some(_) => return None,
        None => (digits, &digits[digits.len()..]),
    };
    let int_max = if scale > 0 {
        precision - scale
    } else {
        precision
    };
    if int.is_empty()
        || int.len() > int_max
        || frac.len() > scale
        || (dot.is_some() && frac.is_empty())
    {
        return None;
    }
    let mut v: i128 = 0;
    for &c in int.iter().chain(frac) {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i128;
    }
    for _ in frac.len()..scale {
        v *= 10;
    }
    Some(if neg { -v } else { v })
}

/// A CSV string column's values (Arrow buffers: `offsets` int32, `data`, `valid` bitmap or None,
/// the array's `offset` and `n` rows) as decimal128(`precision`, `scale`) where the text has the
/// strict form `_csv_column`'s regex takes: (one byte per row, 1 there; 16-byte little-endian
/// values, 0 elsewhere). What that regex and the cast of the matching texts give.
#[pyfunction]
#[pyo3(signature = (offsets, data, valid, offset, n, precision, scale))]
#[allow(clippy::too_many_arguments)]
fn decimal_text<'py>(
    py: Python<'py>,
    offsets: PyBuffer<i8>,
    data: Option<PyBuffer<i8>>,
    valid: Option<PyBuffer<i8>>,
    offset: usize,
    n: usize,
    precision: usize,
    scale: usize,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let cells = Strings::of("decimal_text", &offsets, data.as_ref(), valid.as_ref())?;
    if !(1..=38).contains(&precision) || scale > precision {
        return Err(PyValueError::new_err(
            "decimal_text: 1 <= precision <= 38, scale <= precision",
        ));
    }
    cells.covers(offset, n)?;
    let got: Result<_, ()> = py.allow_threads(|| {
        let mut ok = vec![0u8; n];
        let mut values = vec![0u8; n * 16];
        for i in 0..n {
            let Some(b) = cells.get(offset + i)? else {
                continue;
            };
            if let Some(v) = decimal(b, precision, scale) {
                ok[i] = 1;
                values[i * 16..i * 16 + 16].copy_from_slice(&v.to_le_bytes());
            }
        }
        Ok((ok, values))
    });
    let (ok, values) = got.map_err(|()| cells.outside())?;
    Ok((PyBytes::new(py, &ok), PyBytes::new(py, &values)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decimal_text, m)?)?;
    m.add_function(wrap_pyfunction!(without_trailing_crs, m)?)?;
    m.add_function(wrap_pyfunction!(csv_split, m)?)
}
