//! The embedded log's stored batch written in one native call (`adapters/sqlite_log/batch.py`,
//! `encode_batch_columns` and `_sealed`): timestamps, keys and values sections, the header
//! section in the column layout, zstd (level 1, kept only when smaller) and the CRC. The
//! pure-Python `encode_batch_columns` stays the reference: the uncompressed body and the
//! header are the same bytes by construction and `tests/unit/test_native_stored_batch.py`
//! compares them; the zstd frame comes from libzstd 1.5.5 (zstd-sys, pinned: the version pyarrow 16
//! bundles), so the whole blob is the Python writer's and the per-record and columnar appends
//! store the same bytes and MACs; the reader would inflate another version's frame as well.
//!
//! Returns `None` for anything but the plain case (a sequence that is not a list or tuple, a
//! value that is not `bytes` or `None`, a column of the wrong length, a timestamp that is not
//! an int): the reference then runs and raises its own error, so errors never differ.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyBytes};

const TS_UNIFORM: u8 = 0x01;
const TS_WIDE: u8 = 0x02;
const KEYS_NULL: u8 = 0x04;
const KEYS_MIXED: u8 = 0x08;
const VALUES_NULL: u8 = 0x10;
const VALUES_MIXED: u8 = 0x20;
const HAS_HEADERS: u8 = 0x40;
const VERSION: u8 = 2;
const CODEC_NONE: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const HEADER_PAIRS: u8 = 0;
const HEADER_COLUMNS: u8 = 1;
const CONSTANT: u8 = 0;
const VARYING: u8 = 1;
const ZSTD_LEVEL: i32 = 1; // batch._ZSTD_LEVEL
const INFLATED_PER_RECORD: usize = 1 << 20; // batch._INFLATED_PER_RECORD
const INFLATED_MAX: usize = 32 << 20; // batch._INFLATED_MAX

/// The items of an exact list or tuple as borrowed pointers (the sequence holds them for the
/// call: nothing here runs Python code that could change it), or `None` for another type.
pub(crate) unsafe fn items(seq: *mut ffi::PyObject) -> Option<Vec<*mut ffi::PyObject>> {
    if ffi::PyList_CheckExact(seq) != 0 {
        let n = ffi::PyList_Size(seq);
        return Some((0..n).map(|i| ffi::PyList_GetItem(seq, i)).collect());
    }
    if ffi::PyTuple_CheckExact(seq) != 0 {
        let n = ffi::PyTuple_Size(seq);
        return Some((0..n).map(|i| ffi::PyTuple_GetItem(seq, i)).collect());
    }
    None
}

/// The bytes of an exact `bytes` object, or `None` for anything else.
pub(crate) unsafe fn exact_bytes<'a>(o: *mut ffi::PyObject) -> Option<&'a [u8]> {
    if ffi::PyBytes_CheckExact(o) == 0 {
        return None;
    }
    let p = ffi::PyBytes_AsString(o) as *const u8;
    let n = ffi::PyBytes_Size(o) as usize;
    Some(std::slice::from_raw_parts(p, n))
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_le_bytes());
}

/// A key or value: its bytes, or `None` for Python's `None`.
pub(crate) type Item<'a> = Option<&'a [u8]>;

/// A key or value as an [`Item`], or `None` (the outer one) when it is neither `bytes` nor
/// `None`.
pub(crate) unsafe fn key_or_value<'a>(o: *mut ffi::PyObject) -> Option<Item<'a>> {
    if o == ffi::Py_None() {
        return Some(None);
    }
    exact_bytes(o).map(Some)
}

/// A header column: one `bytes` for every record, or one per record.
pub(crate) enum Column<'a> {
    Shared(&'a [u8]),
    Each(Vec<&'a [u8]>),
}

/// A header column from Python (`bytes`, or a list or tuple of `bytes`), or `None` for
/// anything else.
pub(crate) unsafe fn column<'a>(c: *mut ffi::PyObject) -> Option<Column<'a>> {
    if let Some(v) = exact_bytes(c) {
        return Some(Column::Shared(v));
    }
    items(c)?
        .into_iter()
        .map(|o| exact_bytes(o))
        .collect::<Option<_>>()
        .map(Column::Each)
}

/// A key or value section (`batch._encode_bytes`): its flags.
fn put_bytes_section(out: &mut Vec<u8>, col: &[Item<'_>], null: u8, mixed: u8) -> u8 {
    let nulls = col.iter().filter(|v| v.is_none()).count();
    if nulls == col.len() {
        return null;
    }
    let size: usize = col.iter().flatten().map(|v| v.len()).sum();
    out.reserve(5 * col.len() + size);
    for v in col {
        put_u32(out, v.map_or(0, <[u8]>::len));
    }
    if nulls != 0 {
        out.extend(col.iter().map(|v| u8::from(v.is_none())));
    }
    for v in col.iter().flatten() {
        out.extend_from_slice(v);
    }
    if nulls != 0 {
        mixed
    } else {
        0
    }
}

/// An unsealed stored batch: body, flags, layout, count, base timestamp.
pub(crate) type Body = (Vec<u8>, u8, u8, usize, i64);

/// The uncompressed body with its flags, layout, count and base timestamp, or `None` for the reference to handle (see the module's comment).
unsafe fn encode(
    keys: *mut ffi::PyObject,
    values: *mut ffi::PyObject,
    names: *mut ffi::PyObject,
    columns: *mut ffi::PyObject,
    timestamps: *mut ffi::PyObject,
) -> Option<Body> {
    let keys: Vec<Item<'_>> = items(keys)?
        .into_iter()
        .map(|o| key_or_value(o))
        .collect::<Option<_>>()?;
    let values: Vec<Item<'_>> = items(values)?
        .into_iter()
        .map(|o| key_or_value(o))
        .collect::<Option<_>>()?;
    let names: Vec<&[u8]> = items(names)?
        .into_iter()
        .map(|o| exact_bytes(o))
        .collect::<Option<_>>()?;
    let columns: Vec<Column<'_>> = items(columns)?
        .into_iter()
        .map(|c| column(c))
        .collect::<Option<_>>()?;
    let stamps = items(timestamps)?;
    let mut ts: Vec<i64> = Vec::with_capacity(stamps.len());
    for &o in &stamps {
        if ffi::PyLong_CheckExact(o) == 0 {
            return None;
        }
        let v = ffi::PyLong_AsLongLong(o);
        if v == -1 && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        ts.push(v);
    }
    encode_items(&keys, &values, &names, &columns, &ts)
}

/// `encode` over borrowed bytes, no Python object touched (`prepare_columns.rs` runs it
/// without the GIL, on a partition's records picked without building Python lists); `None`
/// when the batch is not what the plain case allows.
pub(crate) fn encode_items(
    keys: &[Item<'_>],
    values: &[Item<'_>],
    names: &[&[u8]],
    columns: &[Column<'_>],
    ts: &[i64],
) -> Option<Body> {
    let n = keys.len();
    if n == 0 || values.len() != n || ts.len() != n || names.len() != columns.len() {
        return None;
    }
    let mut body: Vec<u8> = Vec::new();
    let (lo, hi) = (*ts.iter().min()?, *ts.iter().max()?);
    let mut flags = 0u8;
    // The Python reference compares Python ints, whose difference cannot overflow.
    let span = (hi as i128) - (lo as i128);
    if lo == hi {
        flags |= TS_UNIFORM;
    } else if span <= 0xFFFF_FFFF {
        body.reserve(4 * n);
        for &t in ts {
            body.extend_from_slice(&((t as i128 - lo as i128) as u32).to_le_bytes());
        }
    } else {
        flags |= TS_WIDE;
        for &t in ts {
            body.extend_from_slice(&t.to_le_bytes());
        }
    }
    flags |= put_bytes_section(&mut body, keys, KEYS_NULL, KEYS_MIXED);
    flags |= put_bytes_section(&mut body, values, VALUES_NULL, VALUES_MIXED);
    let mut layout = HEADER_PAIRS;
    if !names.is_empty() {
        let m = names.len();
        if m > 0xFFFF || names.iter().any(|s| s.len() > 0xFFFF) {
            return None;
        }
        let mut kinds: Vec<u8> = Vec::with_capacity(m);
        let mut data: Vec<u8> = Vec::new();
        for col in columns {
            let vals = match col {
                Column::Shared(v) => {
                    kinds.push(CONSTANT);
                    put_u32(&mut data, v.len());
                    data.extend_from_slice(v);
                    continue;
                }
                Column::Each(each) => each,
            };
            if vals.len() != n {
                return None;
            }
            if vals.iter().all(|v| *v == vals[0]) {
                kinds.push(CONSTANT);
                put_u32(&mut data, vals[0].len());
                data.extend_from_slice(vals[0]);
            } else {
                kinds.push(VARYING);
                data.reserve(4 * n + vals.iter().map(|v| v.len()).sum::<usize>());
                for v in vals {
                    put_u32(&mut data, v.len());
                }
                for v in vals {
                    data.extend_from_slice(v);
                }
            }
        }
        body.reserve(2 + 2 * m + names.iter().map(|s| s.len()).sum::<usize>() + m + data.len());
        body.extend_from_slice(&(m as u16).to_le_bytes());
        for s in names {
            body.extend_from_slice(&(s.len() as u16).to_le_bytes());
        }
        for s in names {
            body.extend_from_slice(s);
        }
        body.extend_from_slice(&kinds);
        body.extend_from_slice(&data);
        flags |= HAS_HEADERS;
        layout = HEADER_COLUMNS;
    }
    Some((body, flags, layout, n, lo))
}

/// One zstd frame of `src` at the hub's level, made as Arrow's codec makes it (one
/// `ZSTD_compress` call: the content size in the frame header, no checksum; on this thread's
/// reused context, `zstd_cctx.rs`), or `None` if libzstd reports an error (the body is then
/// stored uncompressed, which the reader accepts).
fn zstd_compress(src: &[u8]) -> Option<Vec<u8>> {
    crate::zstd_cctx::compress(src, ZSTD_LEVEL)
}

/// `batch._sealed` of version 2: the header, the CRC, the body (zstd when that is smaller).
/// With `keep`, also the uncompressed body when it was compressed (None when stored as is):
/// what the embedded log hands the ledger, so that it need not inflate what it just wrote.
pub(crate) fn seal(
    body: Vec<u8>,
    flags: u8,
    layout: u8,
    n: usize,
    lo: i64,
    keep: bool,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let size = body.len();
    let mut packed: Option<Vec<u8>> = None;
    if size <= (n.saturating_mul(INFLATED_PER_RECORD)).min(INFLATED_MAX) {
        if let Some(p) = zstd_compress(&body) {
            if p.len() < size {
                packed = Some(p);
            }
        }
    }
    let codec = if packed.is_some() {
        CODEC_ZSTD
    } else {
        CODEC_NONE
    };
    let stored: &[u8] = packed.as_deref().unwrap_or(&body);
    let mut out: Vec<u8> = Vec::with_capacity(4 + 14 + 6 + stored.len());
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&lo.to_le_bytes());
    out.push(codec);
    out.push(layout);
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(stored);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    let kept = if keep && packed.is_some() {
        Some(body)
    } else {
        None
    };
    (out, kept)
}

/// `encode_batch_columns(keys, values, names, columns, timestamps)` in one call, or `None`
/// when the plain checks fail (the reference then decides). With `keep`: `(stored bytes,
/// uncompressed body or None)` (see [`seal`]).
#[pyfunction]
#[pyo3(signature = (keys, values, names, columns, timestamps, keep=false))]
fn encode_stored_columns<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    names: &Bound<'py, PyAny>,
    columns: &Bound<'py, PyAny>,
    timestamps: &Bound<'py, PyAny>,
    keep: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some((body, flags, layout, n, lo)) = (unsafe {
        encode(
            keys.as_ptr(),
            values.as_ptr(),
            names.as_ptr(),
            columns.as_ptr(),
            timestamps.as_ptr(),
        )
    }) else {
        return Ok(None);
    };
    // The body is owned: zstd and the CRC run without the GIL (the file reader's read-ahead
    // thread parses the next batch meanwhile).
    let (out, kept) = py.allow_threads(|| seal(body, flags, layout, n, lo, keep));
    let blob = PyBytes::new(py, &out);
    if !keep {
        return Ok(Some(blob.into_any()));
    }
    let kept = kept.map(|b| PyBytes::new(py, &b));
    Ok(Some((blob, kept).into_pyobject(py)?.into_any()))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_stored_columns, m)?)
}
