//! A JSON batch's decimal or timestamp text column (`ingest/jsoncols.py`, `ColumnPlan._array`)
//! read in one pass from the Python list itself: no Arrow string array, no regex, no cast. The
//! reference there is `pa.array(data, pa.string())`, `match_substring_regex` with the column's
//! strict pattern, then `pc.cast`; it takes the column only when every value matches and casts.
//! This answers the values only when every non-null value has exactly that form and is a
//! calendar instant; otherwise None and the reference decides (and names nothing new), so the
//! bytes are the reference's by construction. Timestamps reuse `rfc3339::timestamp` (the form
//! of `_TS_RE` with months 01-12 and days 01-31: other months or days fail Arrow's cast anyway).
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::rfc3339::{timestamp, Got};

/// `-?(0|[1-9][0-9]{0,p-s-1})(\.[0-9]{1,s})?` (int part `0` only when p == s, no fraction when
/// s == 0): the unscaled value at `scale` (|value| < 10^18, fits i64).
fn strict_decimal(b: &[u8], precision: usize, scale: usize) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let neg = digits.len() != b.len();
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(_) if scale == 0 => return None,
        Some(d) => (&digits[..d], &digits[d + 1..]),
        None => (digits, &digits[digits.len()..]),
    };
    let has_dot = int.len() != digits.len();
    if int.is_empty() || (has_dot && frac.is_empty()) || frac.len() > scale {
        return None;
    }
    if int.len() > 1 && int[0] == b'0' {
        return None; // a leading zero
    }
    if precision == scale {
        if int != b"0" {
            return None;
        }
    } else if int.len() > precision - scale {
        return None;
    }
    let mut v: i64 = 0;
    for &c in int.iter().chain(frac) {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    for _ in frac.len()..scale {
        v *= 10;
    }
    Some(if neg { -v } else { v })
}

/// `values` (a list of str and, where the column is nullable, None) as a timestamp[us, UTC]
/// column (int64 micros) or, with `decimal`, a decimal128(`precision`, `scale`) column (16-byte
/// little-endian): (validity bitmap or None when no value is None, the values buffer), or None
/// when a value is not of the form (or not UTF-8-encodable, or not a calendar instant).
#[pyfunction]
#[pyo3(signature = (values, decimal, precision, scale))]
fn json_text_column<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    decimal: bool,
    precision: usize,
    scale: usize,
) -> PyResult<Option<(Option<Bound<'py, PyBytes>>, Bound<'py, PyBytes>)>> {
    if decimal && (!(1..=18).contains(&precision) || scale > precision) {
        return Err(PyValueError::new_err(
            "json_text_column: a decimal needs 1 <= precision <= 18 and scale <= precision",
        ));
    }
    let n = values.len();
    let width = if decimal { 16 } else { 8 };
    let mut out = vec![0u8; n * width];
    let mut valid = vec![0u8; n.div_ceil(8)];
    let mut nulls = false;
    for (i, item) in values.iter().enumerate() {
        if item.is_none() {
            nulls = true;
            continue;
        }
        let s = item.downcast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "json_text_column: value {i} is a {}, not str or None",
                item.get_type()
                    .name()
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let Ok(text) = s.to_str() else {
            return Ok(None); // a lone surrogate: the reference's conversion refuses it
        };
        let b = text.as_bytes();
        if decimal {
            let Some(v) = strict_decimal(b, precision, scale) else {
                return Ok(None);
            };
            out[i * 16..i * 16 + 16].copy_from_slice(&(v as i128).to_le_bytes());
        } else {
            let Got::Value(v) = timestamp(b) else {
                return Ok(None);
            };
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        valid[i / 8] |= 1 << (i % 8);
    }
    let validity = nulls.then(|| PyBytes::new(py, &valid));
    Ok(Some((validity, PyBytes::new(py, &out))))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(json_text_column, m)?)
}
