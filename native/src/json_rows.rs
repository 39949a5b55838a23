//! Flat JSON objects (one per line) into Arrow column buffers for a schema's fields: the
//! columnar JSON-lines path's parse (`ingest/arrowread.py`, `json_batch`), which Arrow's JSON
//! reader (`pyarrow.json.read_json`, the reference) otherwise does at ~180 MB/s.
//!
//! Only a strict subset of what Arrow reads is taken here, and a row outside it is refused
//! (`ok` 0) and left to Arrow, which then decides it exactly as before: a row taken here must be
//! one Arrow takes, with the same values. Taken: an object whose keys are schema fields, each at
//! most once, spelt without escapes, separated by `,`/`:` and spaces (no other whitespace);
//! values `null`, or of the field's JSON type only:
//! - string columns: a string with valid UTF-8 and no raw control byte; escapes `\" \\ \/ \b \f
//!   \n \r \t \uXXXX` (a surrogate only as a high/low pair);
//! - int64: `-?[1-9][0-9]{0,17}` or `0` (no `-0`, fraction or exponent: Arrow refuses those);
//! - float64: JSON's number grammar, parsed by Rust's correctly rounded `f64::from_str` (as
//!   Arrow's is); a result out of range (`1e400`) is refused;
//! - bool: `true` / `false`;
//! - decimal128(p, s): a string `-?[0-9]+(\.[0-9]+)?` without escapes, at most `s` fraction
//!   digits, whose digits as written and whose integer digits plus `s` are within `p`.
//! Anything else (nested values, duplicate or unknown keys, a second document, bad UTF-8,
//! numbers out of range) is refused. `tests/unit/test_native_json_rows.py` compares this with
//! Arrow on random and hostile lines.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::csv_rows::row_spans;

const STRING: u8 = 0;
const INT64: u8 = 1;
const BOOL: u8 = 2;
const FLOAT64: u8 = 3;
const DECIMAL: u8 = 4;

struct Col {
    kind: u8,
    precision: u32,
    scale: u32,
    valid: Vec<u8>,    // one byte per row: packed at the end
    offsets: Vec<i32>, // strings: n + 1
    data: Vec<u8>,     // strings: the text; int64/float64: 8 bytes per row; decimal: 16; bool: 1
}

impl Col {
    fn push_null(&mut self) {
        self.valid.push(0);
        match self.kind {
            STRING => self.offsets.push(self.data.len() as i32),
            INT64 | FLOAT64 => self.data.extend_from_slice(&[0u8; 8]),
            DECIMAL => self.data.extend_from_slice(&[0u8; 16]),
            _ => self.data.push(0),
        }
    }

    /// Back to `rows` rows (a refused row's values go).
    fn truncate(&mut self, rows: usize) {
        self.valid.truncate(rows);
        match self.kind {
            STRING => {
                self.offsets.truncate(rows + 1);
                self.data.truncate(self.offsets[rows] as usize);
            }
            INT64 | FLOAT64 => self.data.truncate(rows * 8),
            DECIMAL => self.data.truncate(rows * 16),
            _ => self.data.truncate(rows),
        }
    }
}

struct Refused;

type Step<T> = Result<T, Refused>;

struct Row<'a> {
    b: &'a [u8],
    p: usize,
}

impl Row<'_> {
    #[inline]
    fn peek(&self) -> Step<u8> {
        self.b.get(self.p).copied().ok_or(Refused)
    }

    #[inline]
    fn spaces(&mut self) {
        while self.p < self.b.len() && self.b[self.p] == b' ' {
            self.p += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Step<()> {
        if self.peek()? != c {
            return Err(Refused);
        }
        self.p += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Step<()> {
        if self.b.len() - self.p < word.len() || &self.b[self.p..self.p + word.len()] != word {
            return Err(Refused);
        }
        self.p += word.len();
        Ok(())
    }

    /// A key without escapes: its bytes (the opening quote consumed here).
    fn key(&mut self) -> Step<&[u8]> {
        self.expect(b'"')?;
        let start = self.p;
        loop {
            let c = self.peek()?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return Err(Refused);
            }
            self.p += 1;
        }
        let key = &self.b[start..self.p];
        self.p += 1;
        Ok(key)
    }

    fn hex4(&mut self) -> Step<u32> {
        if self.b.len() - self.p < 4 {
            return Err(Refused);
        }
        let mut v = 0u32;
        for &c in &self.b[self.p..self.p + 4] {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(Refused),
            };
            v = v * 16 + d as u32;
        }
        self.p += 4;
        Ok(v)
    }

    /// A string's decoded text appended to `out` (the line is valid UTF-8: checked first).
    fn string(&mut self, out: &mut Vec<u8>) -> Step<()> {
        self.expect(b'"')?;
        loop {
            let start = self.p;
            while self.p < self.b.len() {
                let c = self.b[self.p];
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.p += 1;
            }
            out.extend_from_slice(&self.b[start..self.p]);
            let c = self.peek()?;
            self.p += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {}
                _ => return Err(Refused), // a raw control byte
            }
            let e = self.peek()?;
            self.p += 1;
            let simple = match e {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b'f' => 0x0C,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => 0,
                _ => return Err(Refused),
            };
            if e != b'u' {
                out.push(simple);
                continue;
            }
            let mut cp = self.hex4()?;
            if (0xDC00..0xE000).contains(&cp) {
                return Err(Refused); // a lone low surrogate
            }
            if (0xD800..0xDC00).contains(&cp) {
                self.literal(b"\\u")?;
                let low = self.hex4()?;
                if !(0xDC00..0xE000).contains(&low) {
                    return Err(Refused);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            let ch = char::from_u32(cp).ok_or(Refused)?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.p;
        while self.p < self.b.len() && self.b[self.p].is_ascii_digit() {
            self.p += 1;
        }
        self.p - start
    }

    fn int64(&mut self) -> Step<i64> {
        let neg = self.peek()? == b'-';
        if neg {
            self.p += 1;
        }
        let first = self.p;
        let n = self.digits();
        if n == 0 || n > 18 || (self.b[first] == b'0' && (n > 1 || neg)) {
            return Err(Refused);
        }
        if matches!(self.peek(), Ok(b'.' | b'e' | b'E')) {
            return Err(Refused);
        }
        let mut v: i64 = 0;
        for &c in &self.b[first..self.p] {
            v = v * 10 + (c - b'0') as i64;
        }
        Ok(if neg { -v } else { v })
    }

    fn float64(&mut self) -> Step<f64> {
        let start = self.p;
        if self.peek()? == b'-' {
            self.p += 1;
        }
        let first = self.p;
        let n = self.digits();
        if n == 0 || (self.b[first] == b'0' && n > 1) {
            return Err(Refused);
        }
        if matches!(self.peek(), Ok(b'.')) {
            self.p += 1;
            if self.digits() == 0 {
                return Err(Refused);
            }
        }
        if matches!(self.peek(), Ok(b'e' | b'E')) {
            self.p += 1;
            if matches!(self.peek(), Ok(b'+' | b'-')) {
                self.p += 1;
            }
            if self.digits() == 0 {
                return Err(Refused);
            }
        }
        // ASCII digits and signs only: valid UTF-8
        let text = std::str::from_utf8(&self.b[start..self.p]).map_err(|_| Refused)?;
        let v: f64 = text.parse().map_err(|_| Refused)?;
        if !v.is_finite() {
            return Err(Refused);
        }
        Ok(v)
    }

    /// A decimal string as the unscaled integer at `scale`.
    fn decimal(&mut self, precision: u32, scale: u32) -> Step<i128> {
        self.expect(b'"')?;
        let neg = self.peek()? == b'-';
        if neg {
            self.p += 1;
        }
        let int_start = self.p;
        let int_digits = self.digits();
        let int_end = self.p;
        if int_digits == 0 {
            return Err(Refused);
        }
        let (frac_start, mut frac_digits) = (self.p + 1, 0usize);
        if self.peek()? == b'.' {
            self.p += 1;
            frac_digits = self.digits();
            if frac_digits == 0 {
                return Err(Refused);
            }
        }
        self.expect(b'"')?;
        let (p, s) = (precision as usize, scale as usize);
        if frac_digits > s || int_digits + frac_digits > p || int_digits + s > p {
            return Err(Refused);
        }
        let mut v: i128 = 0;
        for &c in &self.b[int_start..int_end] {
            v = v * 10 + (c - b'0') as i128;
        }
        for &c in &self.b[frac_start..frac_start + frac_digits] {
            v = v * 10 + (c - b'0') as i128;
        }
        for _ in frac_digits..s {
            v *= 10;
        }
        Ok(if neg { -v } else { v })
    }
}

fn parse_row(line: &[u8], names: &[Vec<u8>], cols: &mut [Col], seen: &mut [bool]) -> Step<()> {
    // Bytes outside strings must be ASCII to be taken, so one check covers every string.
    if std::str::from_utf8(line).is_err() {
        return Err(Refused);
    }
    seen.iter_mut().for_each(|s| *s = false);
    let mut r = Row { b: line, p: 0 };
    r.spaces();
    r.expect(b'{')?;
    r.spaces();
    let mut guess = 0usize; // fields usually come in schema order
    if r.peek()? != b'}' {
        loop {
            let key = r.key()?;
            let n = names.len();
            let mut at = n;
            for k in 0..n {
                let i = (guess + k) % n;
                if names[i].as_slice() == key {
                    at = i;
                    break;
                }
            }
            if at == n || seen[at] {
                return Err(Refused); // unknown or repeated
            }
            seen[at] = true;
            guess = at + 1;
            r.spaces();
            r.expect(b':')?;
            r.spaces();
            let col = &mut cols[at];
            if r.peek()? == b'n' {
                r.literal(b"null")?;
                col.push_null();
            } else {
                match col.kind {
                    STRING => {
                        r.string(&mut col.data)?;
                        if col.data.len() > i32::MAX as usize {
                            return Err(Refused);
                        }
                        col.offsets.push(col.data.len() as i32);
                    }
                    INT64 => {
                        let v = r.int64()?;
                        col.data.extend_from_slice(&v.to_le_bytes());
                    }
                    FLOAT64 => {
                        let v = r.float64()?;
                        col.data.extend_from_slice(&v.to_le_bytes());
                    }
                    BOOL => {
                        let v = if r.peek()? == b't' {
                            r.literal(b"true")?;
                            1
                        } else {
                            r.literal(b"false")?;
                            0
                        };
                        col.data.push(v);
                    }
                    _ => {
                        let v = r.decimal(col.precision, col.scale)?;
                        col.data.extend_from_slice(&v.to_le_bytes());
                    }
                }
                col.valid.push(1);
            }
            r.spaces();
            match r.peek()? {
                b',' => {
                    r.p += 1;
                    r.spaces();
                }
                b'}' => break,
                _ => return Err(Refused),
            }
        }
    }
    r.p += 1; // the closing brace
    r.spaces();
    if r.p != line.len() {
        return Err(Refused); // anything after the object (a second document)
    }
    for (col, s) in cols.iter_mut().zip(seen.iter()) {
        if !*s {
            col.push_null(); // a missing field: null, as Arrow reads it
        }
    }
    Ok(())
}

fn bitmap(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len().div_ceil(8)];
    for (i, &b) in bytes.iter().enumerate() {
        out[i / 8] |= (b & 1) << (i % 8);
    }
    out
}

/// Rows `data[starts[i]:ends[i]]` (int64 native-endian arrays as bytes) parsed for fields
/// `names` of `kinds` (with `precisions`/`scales` for decimals). Returns (ok per row, one byte
/// each; the taken rows' count; per field (validity bitmap or None, values, offsets or None)):
/// the columns hold only the rows taken, in order.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn json_rows<'py>(
    py: Python<'py>,
    data: &[u8],
    starts: &[u8],
    ends: &[u8],
    names: Vec<Vec<u8>>,
    kinds: Vec<u8>,
    precisions: Vec<u32>,
    scales: Vec<u32>,
) -> PyResult<(
    Bound<'py, PyBytes>,
    usize,
    Vec<(
        Option<Bound<'py, PyBytes>>,
        Bound<'py, PyBytes>,
        Option<Bound<'py, PyBytes>>,
    )>,
)> {
    if starts.len() != ends.len() || starts.len() % 8 != 0 {
        return Err(PyValueError::new_err(
            "json_rows: starts and ends must be int64 arrays of one length",
        ));
    }
    let nf = names.len();
    if kinds.len() != nf || precisions.len() != nf || scales.len() != nf {
        return Err(PyValueError::new_err(
            "json_rows: one kind, precision and scale per field",
        ));
    }
    if let Some(&k) = kinds.iter().find(|&&k| k > DECIMAL) {
        return Err(PyValueError::new_err(format!(
            "json_rows: unknown kind {k}"
        )));
    }
    if (0..nf).any(|i| {
        kinds[i] == DECIMAL && (!(1..=38).contains(&precisions[i]) || scales[i] > precisions[i])
    }) {
        return Err(PyValueError::new_err(
            "json_rows: a decimal needs 1 <= precision <= 38, scale <= precision",
        ));
    }
    let n = starts.len() / 8;
    let spans = row_spans("json_rows", data, starts, ends)?;
    let (ok, taken, cols) = py.allow_threads(|| {
        let mut cols: Vec<Col> = (0..nf)
            .map(|i| Col {
                kind: kinds[i],
                precision: precisions[i],
                scale: scales[i],
                valid: Vec::with_capacity(n),
                offsets: if kinds[i] == STRING {
                    vec![0]
                } else {
                    Vec::new()
                },
                data: Vec::new(),
            })
            .collect();
        let mut seen = vec![false; nf];
        let mut ok = vec![0u8; n];
        let mut taken = 0usize;
        for (i, &(s, e)) in spans.iter().enumerate() {
            if parse_row(&data[s..e], &names, &mut cols, &mut seen).is_ok() {
                ok[i] = 1;
                taken += 1;
            } else {
                cols.iter_mut().for_each(|c| c.truncate(taken));
            }
        }
        (ok, taken, cols)
    });
    let out = cols
        .into_iter()
        .map(|c| {
            let nulls = c.valid.iter().any(|&v| v == 0);
            let valid = nulls.then(|| PyBytes::new(py, &bitmap(&c.valid)));
            let values = if c.kind == BOOL {
                PyBytes::new(py, &bitmap(&c.data))
            } else {
                PyBytes::new(py, &c.data)
            };
            let offsets = (c.kind == STRING).then(|| {
                let raw: Vec<u8> = c.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
                PyBytes::new(py, &raw)
            });
            (valid, values, offsets)
        })
        .collect();
    Ok((PyBytes::new(py, &ok), taken, out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(json_rows, m)?)
}
