//! Row-wise Avro encoding of an Arrow record batch's columns into one `bytes` per row, in one
//! call: `core/avro/vector.py`'s `VectorEncoder.encode`, whose numpy pieces and `_assemble` are
//! the pure-Python reference (`tests/unit/test_native_avro_encode.py`: identical bytes on random
//! schemas and batches).
//!
//! The caller hands each field as the Arrow buffers of its column (validity bitmap, values or
//! offsets, data) with their offsets; nothing is converted in Python. A row a column marks null
//! gets no value bytes (only its union branch when the field is nullable), as in the reference;
//! that is also what the reference writes for a null in a non-null field, a row `bad_rows` keeps
//! out. Arithmetic wraps where numpy's int64 wraps. Buffers too short for the rows they claim
//! answer an error, never a read out of bounds. Anything else unusual (a decimal scale shift
//! outside 0..=18, an unknown kind) answers None: the reference decides.
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;

const CONST: u8 = 0;
const BINARY: u8 = 1; // string / bytes: aux 1 = 64-bit offsets
const INT: u8 = 2; // long / int / date / enum index: aux = element code
const TIMESTAMP: u8 = 3; // int64 storage times aux
const BOOLEAN: u8 = 4;
const DOUBLE: u8 = 5; // aux 0 = float64 source, 1 = float32 source
const FLOAT: u8 = 6;
const DECIMAL: u8 = 7; // aux = Avro scale minus Arrow scale

/// Element codes of integer sources: (bytes, signed).
fn int_layout(code: i64) -> Option<(usize, bool)> {
    Some(match code {
        1 => (1, true),
        2 => (2, true),
        3 => (4, true),
        4 => (8, true),
        5 => (1, false),
        6 => (2, false),
        7 => (4, false),
        _ => return None,
    })
}

struct Field<'a> {
    kind: u8,
    null_index: i64, // -1: not nullable
    aux: i64,
    valid: Option<&'a [u8]>,
    valid_off: usize,
    b1: &'a [u8],
    b2: &'a [u8],
    off: usize,
    constant: &'a [u8],
}

type FieldArgs = (
    u8,
    i64,
    i64,
    Option<PyBuffer<i8>>,
    usize,
    Option<PyBuffer<i8>>,
    Option<PyBuffer<i8>>,
    usize,
    Vec<u8>,
);

fn bytes_of(b: &Option<PyBuffer<i8>>) -> PyResult<&[u8]> {
    match b {
        None => Ok(&[]),
        Some(b) => {
            if !b.is_c_contiguous() {
                return Err(PyValueError::new_err(
                    "avro_encode_rows: a non-contiguous buffer.",
                ));
            }
            // SAFETY: the buffer view is held (and its exporter alive) for the whole call.
            Ok(unsafe { std::slice::from_raw_parts(b.buf_ptr() as *const u8, b.len_bytes()) })
        }
    }
}

#[inline]
fn bit(bits: &[u8], i: usize) -> bool {
    bits[i >> 3] >> (i & 7) & 1 == 1
}

#[inline]
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn too_short(name: &str) -> PyErr {
    PyValueError::new_err(format!(
        "avro_encode_rows: a {name} buffer shorter than its rows."
    ))
}

/// Checks every buffer covers the rows it is read at, so the row loop indexes safely.
fn check(f: &Field, n: usize) -> PyResult<Option<()>> {
    if let Some(v) = f.valid {
        if v.len() * 8 < f.valid_off + n {
            return Err(too_short("validity"));
        }
    }
    let need = |w: usize| f.b1.len() >= (f.off + n) * w;
    match f.kind {
        CONST => {}
        BINARY => {
            let w = if f.aux == 1 { 8 } else { 4 };
            if !need(w) || f.b1.len() < (f.off + n + 1) * w {
                return Err(too_short("offsets"));
            }
            let (lo, hi) = (offset_at(f, 0), offset_at(f, n));
            if lo < 0 || hi < lo || hi as u64 > f.b2.len() as u64 {
                return Err(too_short("data"));
            }
            for r in 0..n {
                if offset_at(f, r + 1) < offset_at(f, r) {
                    return Err(PyValueError::new_err(
                        "avro_encode_rows: decreasing offsets.",
                    ));
                }
            }
        }
        INT => match int_layout(f.aux) {
            Some((w, _)) if need(w) => {}
            Some(_) => return Err(too_short("values")),
            None => return Ok(None),
        },
        TIMESTAMP => {
            if !need(8) {
                return Err(too_short("values"));
            }
        }
        BOOLEAN => {
            if f.b1.len() * 8 < f.off + n {
                return Err(too_short("values"));
            }
        }
        DOUBLE | FLOAT => {
            let w = if f.kind == DOUBLE && f.aux == 0 { 8 } else { 4 };
            if !need(w) {
                return Err(too_short("values"));
            }
        }
        DECIMAL => {
            if !(0..=18).contains(&f.aux) {
                return Ok(None);
            }
            if !need(16) {
                return Err(too_short("values"));
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(()))
}

#[inline]
fn offset_at(f: &Field, i: usize) -> i64 {
    let i = f.off + i;
    if f.aux == 1 {
        i64::from_le_bytes(f.b1[8 * i..8 * i + 8].try_into().unwrap())
    } else {
        i32::from_le_bytes(f.b1[4 * i..4 * i + 4].try_into().unwrap()) as i64
    }
}

#[inline]
fn int_at(b: &[u8], i: usize, (w, signed): (usize, bool)) -> i64 {
    let s = &b[w * i..w * i + w];
    match (w, signed) {
        (1, true) => s[0] as i8 as i64,
        (2, true) => i16::from_le_bytes([s[0], s[1]]) as i64,
        (4, true) => i32::from_le_bytes(s.try_into().unwrap()) as i64,
        (8, _) => i64::from_le_bytes(s.try_into().unwrap()),
        (1, false) => s[0] as i64,
        (2, false) => u16::from_le_bytes([s[0], s[1]]) as i64,
        _ => u32::from_le_bytes(s.try_into().unwrap()) as i64,
    }
}

/// Row `r`'s value bytes of a present (non-null) row.
#[inline]
fn put_value(out: &mut Vec<u8>, f: &Field, r: usize) {
    let i = f.off + r;
    match f.kind {
        BINARY => {
            let (a, b) = (offset_at(f, r) as usize, offset_at(f, r + 1) as usize);
            put_varint(out, (b - a) as i64);
            out.extend_from_slice(&f.b2[a..b]);
        }
        INT => put_varint(out, int_at(f.b1, i, int_layout(f.aux).unwrap())),
        TIMESTAMP => put_varint(out, int_at(f.b1, i, (8, true)).wrapping_mul(f.aux)),
        BOOLEAN => out.push(bit(f.b1, i) as u8),
        DOUBLE if f.aux == 1 => {
            let v = f32::from_le_bytes(f.b1[4 * i..4 * i + 4].try_into().unwrap());
            out.extend_from_slice(&(v as f64).to_le_bytes());
        }
        DOUBLE => out.extend_from_slice(&f.b1[8 * i..8 * i + 8]),
        FLOAT => out.extend_from_slice(&f.b1[4 * i..4 * i + 4]),
        DECIMAL => {
            let lo = i64::from_le_bytes(f.b1[16 * i..16 * i + 8].try_into().unwrap());
            let u = lo.wrapping_mul(10i64.pow(f.aux as u32));
            let mag = u.wrapping_abs(); // numpy's abs: i64::MIN stays negative (width 1)
            let mut width = 1usize;
            for k in 1..8 {
                width += (mag >= 1i64 << (8 * k - 1)) as usize;
            }
            put_varint(out, width as i64);
            out.extend_from_slice(&u.to_be_bytes()[8 - width..]);
        }
        _ => {}
    }
}

fn encode(n: usize, header: &[u8], fields: &[Field], out: &mut Vec<u8>, ends: &mut Vec<usize>) {
    for r in 0..n {
        out.extend_from_slice(header);
        for f in fields {
            if f.kind == CONST {
                out.extend_from_slice(f.constant);
                continue;
            }
            let present = match f.valid {
                Some(v) => bit(v, f.valid_off + r),
                None => true,
            };
            if f.null_index >= 0 {
                let branch = if present {
                    1 - f.null_index
                } else {
                    f.null_index
                };
                out.push((2 * branch) as u8);
            }
            if present {
                put_value(out, f, r);
            }
        }
        ends.push(out.len());
    }
}

/// Every row's Avro value (prefixed with `header`) as a list of `bytes`, or None when a field is
/// outside what is encoded here (the reference decides). `fields`: one tuple per Avro field,
/// (kind, null branch index or -1, aux, validity bitmap or None, its bit offset, first buffer,
/// second buffer, the value offset, the constant's bytes).
#[pyfunction]
fn avro_encode_rows(
    py: Python<'_>,
    n: usize,
    header: &[u8],
    fields: Vec<FieldArgs>,
) -> PyResult<PyObject> {
    let mut plan: Vec<Field> = Vec::with_capacity(fields.len());
    for (kind, null_index, aux, valid, valid_off, b1, b2, off, constant) in fields.iter() {
        if *null_index > 1 || *null_index < -1 {
            return Ok(py.None());
        }
        let f = Field {
            kind: *kind,
            null_index: *null_index,
            aux: *aux,
            valid: match valid {
                Some(_) => Some(bytes_of(valid)?),
                None => None,
            },
            valid_off: *valid_off,
            b1: bytes_of(b1)?,
            b2: bytes_of(b2)?,
            off: *off,
            constant,
        };
        if check(&f, n)?.is_none() {
            return Ok(py.None());
        }
        plan.push(f);
    }
    let mut out: Vec<u8> = Vec::new();
    let mut ends: Vec<usize> = Vec::with_capacity(n);
    py.allow_threads(|| encode(n, header, &plan, &mut out, &mut ends));
    // SAFETY: a new list filled with new references to new bytes objects before it is seen.
    unsafe {
        let list = ffi::PyList_New(n as ffi::Py_ssize_t);
        if list.is_null() {
            return Err(PyErr::fetch(py));
        }
        let list = PyObject::from_owned_ptr(py, list);
        let mut start = 0usize;
        for (r, &end) in ends.iter().enumerate() {
            let b = ffi::PyBytes_FromStringAndSize(
                out.as_ptr().add(start) as *const std::os::raw::c_char,
                (end - start) as ffi::Py_ssize_t,
            );
            if b.is_null() {
                return Err(PyErr::fetch(py));
            }
            ffi::PyList_SetItem(list.as_ptr(), r as ffi::Py_ssize_t, b);
            start = end;
        }
        Ok(list)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(avro_encode_rows, m)?)
}
