//! The embedded log's column append prepared in one native call (`SqliteEventLog._prepare_columns`
//! in adapters/sqlite_log/log.py): route every record to its partition (Kafka's murmur2), group
//! the records by partition in batch order, cut each group into stored batches (record and byte
//! limits, the same halving as `_chunk_bounds`) and write each batch (`stored_batch.rs`).
//!
//! Profiled (py-spy, `publish_file` of JSONL trades, 10,000-row batches): beside the stored-batch
//! writer (42% of `_prepare_columns`), the Python around it was 58%: the route cache lookups and
//! numpy argsort (27%), picking every column per partition (8%), `_chunk_bounds`' size sums (8%),
//! `payload_size` and the type checks. Here each is one pass over borrowed pointers.
//!
//! The Python code stays the reference and decides every case but the plain one: this answers
//! `None` for a key or value that is not `bytes` or `None`, a column that is not a list or tuple
//! of `bytes` of the batch's length, or no partitions; `tests/unit/test_native_prepare_columns.py`
//! compares partitions, record positions, cuts and stored bytes with the reference.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyBytes};

use crate::stored_batch::{encode_items, exact_bytes, items, seal, Column};

type Ptr = *mut ffi::PyObject;

/// Kafka's 32-bit murmur2 (`core/partitioner.py`, `Utils.murmur2` in Kafka).
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5BD1_E995;
    let mut h: u32 = 0x9747_B28C ^ (data.len() as u32);
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        let mut k = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = quads.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The length of a key or value (`None`: 0), or `None` for any other type.
unsafe fn size_of(o: Ptr) -> Option<usize> {
    if o == ffi::Py_None() {
        return Some(0);
    }
    exact_bytes(o).map(<[u8]>::len)
}

/// `_chunk_bounds`: at most `max_records` per batch, halved while a batch holds more than
/// `max_bytes` of keys and values (never below one record), in the reference's order.
fn chunk_bounds(sizes: &[usize], max_records: usize, max_bytes: usize) -> Vec<(usize, usize)> {
    let mut prefix: Vec<usize> = Vec::with_capacity(sizes.len() + 1);
    prefix.push(0);
    for &s in sizes {
        prefix.push(prefix[prefix.len() - 1] + s);
    }
    let mut out = Vec::new();
    let mut todo = vec![(0, sizes.len())];
    while let Some((start, stop)) = todo.pop() {
        if stop - start > max_records {
            let mid = start + max_records;
            todo.push((mid, stop));
            todo.push((start, mid));
            continue;
        }
        if prefix[stop] - prefix[start] > max_bytes && stop - start > 1 {
            let mid = (start + stop) / 2;
            todo.push((mid, stop));
            todo.push((start, mid));
            continue;
        }
        out.push((start, stop));
    }
    out
}

/// One partition's records: their positions in the append (`None`: all, in order).
struct Group {
    partition: usize,
    indexes: Option<Vec<usize>>,
}

/// `_route` for records without an explicit partition: ascending partitions, batch order
/// within each.
unsafe fn route(keys: &[Ptr], nparts: usize) -> Vec<Group> {
    let none = ffi::Py_None();
    let whole = |p| {
        vec![Group {
            partition: p,
            indexes: None,
        }]
    };
    if nparts == 1 || keys.iter().all(|&k| k == none) {
        return whole(0);
    }
    let parts: Vec<usize> = keys
        .iter()
        .map(|&k| match exact_bytes(k) {
            Some(b) => (murmur2(b) & 0x7FFF_FFFF) as usize % nparts,
            None => 0, // a None key (other types were refused before)
        })
        .collect();
    if parts.iter().all(|&p| p == parts[0]) {
        return whole(parts[0]);
    }
    let mut counts = vec![0usize; nparts];
    for &p in &parts {
        counts[p] += 1;
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut slot = vec![usize::MAX; nparts];
    for (p, &c) in counts.iter().enumerate() {
        if c != 0 {
            slot[p] = groups.len();
            groups.push(Group {
                partition: p,
                indexes: Some(Vec::with_capacity(c)),
            });
        }
    }
    for (i, &p) in parts.iter().enumerate() {
        if let Some(idx) = groups[slot[p]].indexes.as_mut() {
            idx.push(i);
        }
    }
    groups
}

/// An unsealed stored batch: body, flags, layout, count, base timestamp (`encode_items`).
type Body = (Vec<u8>, u8, u8, usize, i64);
type Chunks<'py> = Vec<Bound<'py, PyAny>>;
type Prepared<'py> = (usize, Vec<(usize, Option<Vec<usize>>, usize, Chunks<'py>)>);

/// `(key and value bytes, [(partition, positions or None, count, [(stored batch, count)])])`
/// for an append whose records all carry `timestamp`, or `None` when the reference must decide.
/// With `keep`, each chunk is `(stored batch, count, uncompressed body or None)` (`seal`).
#[pyfunction]
#[pyo3(signature = (keys, values, names, columns, timestamp, nparts, max_records, max_bytes, keep=false))]
#[allow(clippy::too_many_arguments)]
fn prepare_stored_columns<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    names: &Bound<'py, PyAny>,
    columns: &Bound<'py, PyAny>,
    timestamp: i64,
    nparts: usize,
    max_records: usize,
    max_bytes: usize,
    keep: bool,
) -> PyResult<Option<Prepared<'py>>> {
    if nparts == 0 || max_records == 0 {
        return Ok(None);
    }
    // Every pointer is borrowed from the caller's lists, which hold them for the call: no
    // Python code runs here, and the GIL is released only around owned buffers (zstd, CRC).
    let parsed = || unsafe {
        let keys = items(keys.as_ptr())?;
        let values = items(values.as_ptr())?;
        let names = items(names.as_ptr())?;
        let n = keys.len();
        if n == 0 || values.len() != n {
            return None;
        }
        let mut cols: Vec<Option<Vec<Ptr>>> = Vec::new(); // None: one bytes for every record
        for c in items(columns.as_ptr())? {
            if exact_bytes(c).is_some() {
                cols.push(None);
            } else {
                let each = items(c)?;
                if each.len() != n {
                    return None;
                }
                cols.push(Some(each));
            }
        }
        let shared: Vec<Ptr> = items(columns.as_ptr())?;
        let mut sizes: Vec<usize> = Vec::with_capacity(n);
        for i in 0..n {
            sizes.push(size_of(keys[i])? + size_of(values[i])?);
        }
        let size: usize = sizes.iter().sum();
        let groups = route(&keys, nparts);
        let mut bodies: Vec<Vec<Body>> = Vec::with_capacity(groups.len());
        for g in &groups {
            let pick = |col: &[Ptr]| -> Vec<Ptr> {
                match &g.indexes {
                    None => col.to_vec(),
                    Some(idx) => idx.iter().map(|&i| col[i]).collect(),
                }
            };
            let (ks, vs) = (pick(&keys), pick(&values));
            let gsizes: Vec<usize> = match &g.indexes {
                None => sizes.clone(),
                Some(idx) => idx.iter().map(|&i| sizes[i]).collect(),
            };
            let cs: Vec<Option<Vec<Ptr>>> = cols.iter().map(|c| c.as_deref().map(pick)).collect();
            let mut out = Vec::new();
            for (a, b) in chunk_bounds(&gsizes, max_records, max_bytes) {
                let chunk_cols: Vec<Column> = cs
                    .iter()
                    .zip(&shared)
                    .map(|(c, &s)| match c {
                        None => Column::Shared(s),
                        Some(each) => Column::Each(each[a..b].to_vec()),
                    })
                    .collect();
                let ts = vec![timestamp; b - a];
                out.push(encode_items(
                    &ks[a..b],
                    &vs[a..b],
                    &names,
                    &chunk_cols,
                    &ts,
                )?);
            }
            bodies.push(out);
        }
        Some((size, groups, bodies))
    };
    let Some((size, groups, bodies)) = parsed() else {
        return Ok(None);
    };
    type Sealed = ((Vec<u8>, Option<Vec<u8>>), usize);
    let sealed: Vec<Vec<Sealed>> = py.allow_threads(|| {
        bodies
            .into_iter()
            .map(|chunks| {
                chunks
                    .into_iter()
                    .map(|(body, flags, layout, n, lo)| (seal(body, flags, layout, n, lo, keep), n))
                    .collect()
            })
            .collect()
    });
    let mut out = Vec::with_capacity(groups.len());
    for (g, chunks) in groups.into_iter().zip(sealed) {
        let count = chunks.iter().map(|c| c.1).sum();
        let mut items: Chunks<'py> = Vec::with_capacity(chunks.len());
        for ((blob, kept), n) in chunks {
            let blob = PyBytes::new(py, &blob);
            let item = if keep {
                let kept = kept.map(|b| PyBytes::new(py, &b));
                (blob, n, kept).into_pyobject(py)?.into_any()
            } else {
                (blob, n).into_pyobject(py)?.into_any()
            };
            items.push(item);
        }
        out.push((g.partition, g.indexes, count, items));
    }
    Ok(Some((size, out)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(prepare_stored_columns, m)?)
}
