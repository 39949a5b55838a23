//! Strict RFC 3339 times and dates of a string column into timestamp[us, UTC] / date32 values:
//! the JSON-lines and CSV readers' `_finish` / `_csv_column` (`ingest/arrowread.py`), where the
//! reference is Arrow's `match_substring_regex` with `_TS` / `_DATE`, then a cast of the matching
//! strings. A value is taken only in exactly the regex's form (`YYYY-MM-DDTHH:MM:SS`, 1 to 6
//! fraction digits, `Z` or `+HH:MM` / `-HH:MM`; dates `YYYY-MM-DD`), each field in the regex's
//! range. When a matching value is not a calendar date (a 30th of February) or is in year 0, the
//! answer is None: the caller's reference path (the cast, then Python's parser) decides the whole
//! column, as before. `tests/unit/test_native_json_rows.py` compares both.
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::csv_rows::Strings;

fn num(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub(crate) enum Got {
    No,         // not of the form: the regex does not match
    Value(i64), // micros or days
    Undecided,  // of the form, not a calendar date (or year 0): the reference decides
}

/// `YYYY-MM-DD` at the start of `b`: (y, m, d), in the regex's ranges, or None.
fn ymd(b: &[u8]) -> Option<(i64, i64, i64)> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((y, m, d))
}

fn calendar(y: i64, m: i64, d: i64) -> bool {
    y != 0 && d <= days_in_month(y, m)
}

fn date(b: &[u8]) -> Got {
    match ymd(b) {
        Some((y, m, d)) if b.len() == 10 => {
            if calendar(y, m, d) {
                Got::Value(days_from_civil(y, m, d))
            } else {
                Got::Undecided
            }
        }
        _ => Got::No,
    }
}

fn hh_mm(b: &[u8]) -> Option<(i64, i64)> {
    let (h, m) = (num(&b[0..2])?, num(&b[3..5])?);
    (b[2] == b':' && h <= 23 && m <= 59).then_some((h, m))
}

pub(crate) fn timestamp(b: &[u8]) -> Got {
    let Some((y, mo, d)) = ymd(b) else {
        return Got::No;
    };
    if b.len() < 20 || b[10] != b'T' || b[16] != b':' {
        return Got::No;
    }
    let Some((h, mi)) = hh_mm(&b[11..16]) else {
        return Got::No;
    };
    let Some(s) = num(&b[17..19]).filter(|&s| s <= 59) else {
        return Got::No;
    };
    let mut p = 19;
    let mut micros = 0i64;
    if b[p] == b'.' {
        let start = p + 1;
        p = start;
        while p < b.len() && b[p].is_ascii_digit() {
            p += 1;
        }
        let n = p - start;
        if !(1..=6).contains(&n) {
            return Got::No;
        }
        micros = num(&b[start..p]).unwrap_or(0) * 10i64.pow((6 - n) as u32);
    }
    let offset = match b.get(p) {
        Some(b'Z') if b.len() == p + 1 => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == p + 6 => {
            let Some((oh, om)) = hh_mm(&b[p + 1..p + 6]) else {
                return Got::No;
            };
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return Got::No,
    };
    if !calendar(y, mo, d) {
        return Got::Undecided;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    Got::Value(secs * 1_000_000 + micros)
}

/// A string column's values (Arrow buffers: `offsets` int32, `data`, `valid` bitmap or None, the
/// array's `offset` and `n` rows) read as timestamps (micros, UTC) or, with `dates`, dates (days):
/// (one byte per row, 1 where the value is valid and of the form; the values, int64 or int32
/// little-endian, 0 elsewhere), or None when a value of the form is not a calendar date.
#[pyfunction]
#[pyo3(signature = (offsets, data, valid, offset, n, dates))]
fn rfc3339_values<'py>(
    py: Python<'py>,
    offsets: PyBuffer<i8>,
    data: Option<PyBuffer<i8>>,
    valid: Option<PyBuffer<i8>>,
    offset: usize,
    n: usize,
    dates: bool,
) -> PyResult<Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
    let cells = Strings::of("rfc3339_values", &offsets, data.as_ref(), valid.as_ref())?;
    cells.covers(offset, n)?;
    let got: Result<_, ()> = py.allow_threads(|| {
        let mut ok = vec![0u8; n];
        let width = if dates { 4 } else { 8 };
        let mut values = vec![0u8; n * width];
        for i in 0..n {
            let Some(b) = cells.get(offset + i)? else {
                continue;
            };
            match if dates { date(b) } else { timestamp(b) } {
                Got::No => {}
                Got::Undecided => return Ok(None),
                Got::Value(v) => {
                    ok[i] = 1;
                    if dates {
                        values[i * 4..i * 4 + 4].copy_from_slice(&(v as i32).to_le_bytes());
                    } else {
                        values[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        Ok(Some((ok, values)))
    });
    match got {
        Err(()) => Err(cells.outside()),
        Ok(None) => Ok(None),
        Ok(Some((ok, values))) => Ok(Some((PyBytes::new(py, &ok), PyBytes::new(py, &values)))),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfc3339_values, m)?)
}
