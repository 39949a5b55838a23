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
//! The GIL is held only to borrow the inputs and to make the answer's Python objects: routing,
//! cutting, encoding, zstd and the CRC run in `allow_threads` (the ledger follower's Python and
//! the next batch's read overlap them). Every list is first frozen into a tuple the call holds
//! (`frozen`): a tuple cannot change and holds its items, and `bytes` are immutable, so the
//! borrowed bytes stay alive and unchanged while another thread runs.
//!
//! The Python code stays the reference and decides every case but the plain one: this answers
//! `None` for a key or value that is not `bytes` or `None`, a column that is not a list or tuple
//! of `bytes` of the batch's length, or no partitions; `tests/unit/test_native_prepare_columns.py`
//! compares partitions, record positions, cuts and stored bytes with the reference.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyBytes};

use crate::stored_batch::{column, encode_items, exact_bytes, items, key_or_value, seal};
use crate::stored_batch::{Column, Item};

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
fn route(keys: &[Item<'_>], nparts: usize) -> Vec<Group> {
    let whole = |p| {
        vec![Group {
            partition: p,
            indexes: None,
        }]
    };
    if nparts == 1 || keys.iter().all(Option::is_none) {
        return whole(0);
    }
    let parts: Vec<usize> = keys
        .iter()
        .map(|k| match k {
            Some(b) => (murmur2(b) & 0x7FFF_FFFF) as usize % nparts,
            None => 0,
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

/// `seq` (an exact list or tuple) as a tuple this call holds (a list is copied, its items
/// held), or `None` for another type.
unsafe fn frozen(py: Python<'_>, seq: Ptr) -> Option<Py<PyAny>> {
    if ffi::PyTuple_CheckExact(seq) != 0 {
        return Some(Py::from_borrowed_ptr(py, seq));
    }
    if ffi::PyList_CheckExact(seq) != 0 {
        let t = ffi::PyList_AsTuple(seq);
        if t.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        return Some(Py::from_owned_ptr(py, t));
    }
    None
}

/// The append's inputs borrowed as bytes; `held` keeps every object they point into alive.
struct Input<'a> {
    keys: Vec<Item<'a>>,
    values: Vec<Item<'a>>,
    names: Vec<&'a [u8]>,
    cols: Vec<Column<'a>>,
    _held: Vec<Py<PyAny>>,
}

/// Under the GIL: the inputs frozen and borrowed, or `None` when one is not the plain case
/// (a key or value that is not `bytes` or `None`, a name or header value that is not `bytes`,
/// a sequence that is not a list or tuple).
unsafe fn borrow<'a>(
    py: Python<'_>,
    keys: Ptr,
    values: Ptr,
    names: Ptr,
    columns: Ptr,
) -> Option<Input<'a>> {
    let mut held: Vec<Py<PyAny>> = Vec::new();
    let mut hold = |seq: Ptr| -> Option<Vec<Ptr>> {
        let t = frozen(py, seq)?;
        let got = items(t.as_ptr());
        held.push(t);
        got
    };
    let keys: Vec<Item<'a>> = hold(keys)?
        .into_iter()
        .map(|o| key_or_value(o))
        .collect::<Option<_>>()?;
    let values: Vec<Item<'a>> = hold(values)?
        .into_iter()
        .map(|o| key_or_value(o))
        .collect::<Option<_>>()?;
    let names: Vec<&'a [u8]> = hold(names)?
        .into_iter()
        .map(|o| exact_bytes(o))
        .collect::<Option<_>>()?;
    let mut cols: Vec<Column<'a>> = Vec::new();
    for c in hold(columns)? {
        if exact_bytes(c).is_some() {
            cols.push(column(c)?); // held by the frozen `columns`
        } else {
            let t = frozen(py, c)?;
            let col = column(t.as_ptr());
            held.push(t);
            cols.push(col?);
        }
    }
    Some(Input {
        keys,
        values,
        names,
        cols,
        _held: held,
    })
}

type Sealed = ((Vec<u8>, Option<Vec<u8>>), usize);
type Chunks<'py> = Vec<Bound<'py, PyAny>>;
type Prepared<'py> = (usize, Vec<(usize, Option<Vec<usize>>, usize, Chunks<'py>)>);

/// Without the GIL: route, cut, encode and seal (`None`: the reference decides).
fn prepare(
    inp: &Input<'_>,
    timestamp: i64,
    nparts: usize,
    max_records: usize,
    max_bytes: usize,
    keep: bool,
) -> Option<(usize, Vec<Group>, Vec<Vec<Sealed>>)> {
    let (keys, values) = (&inp.keys, &inp.values);
    let n = keys.len();
    if n == 0 || values.len() != n {
        return None;
    }
    if inp
        .cols
        .iter()
        .any(|c| matches!(c, Column::Each(each) if each.len() != n))
    {
        return None;
    }
    let len = |v: &Item<'_>| v.map_or(0, <[u8]>::len);
    let sizes: Vec<usize> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| len(k) + len(v))
        .collect();
    let size: usize = sizes.iter().sum();
    let groups = route(keys, nparts);
    let mut sealed: Vec<Vec<Sealed>> = Vec::with_capacity(groups.len());
    for g in &groups {
        fn pick<T: Copy>(idx: &Option<Vec<usize>>, col: &[T]) -> Vec<T> {
            match idx {
                None => col.to_vec(),
                Some(idx) => idx.iter().map(|&i| col[i]).collect(),
            }
        }
        let (ks, vs, gsizes) = (
            pick(&g.indexes, keys),
            pick(&g.indexes, values),
            pick(&g.indexes, &sizes),
        );
        let cs: Vec<Option<Vec<&[u8]>>> = inp
            .cols
            .iter()
            .map(|c| match c {
                Column::Shared(_) => None,
                Column::Each(each) => Some(pick(&g.indexes, each)),
            })
            .collect();
        let mut out = Vec::new();
        for (a, b) in chunk_bounds(&gsizes, max_records, max_bytes) {
            let chunk_cols: Vec<Column<'_>> = cs
                .iter()
                .zip(&inp.cols)
                .map(|(c, whole)| match (c, whole) {
                    (Some(each), _) => Column::Each(each[a..b].to_vec()),
                    (None, Column::Shared(s)) => Column::Shared(*s),
                    (None, Column::Each(_)) => unreachable!("an Each column is picked above"),
                })
                .collect();
            let ts = vec![timestamp; b - a];
            let (body, flags, layout, count, lo) =
                encode_items(&ks[a..b], &vs[a..b], &inp.names, &chunk_cols, &ts)?;
            out.push((seal(body, flags, layout, count, lo, keep), count));
        }
        sealed.push(out);
    }
    Some((size, groups, sealed))
}

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
    // 1. Under the GIL: borrow every input as bytes, holding frozen copies of the lists.
    let Some(inp) = (unsafe {
        borrow(
            py,
            keys.as_ptr(),
            values.as_ptr(),
            names.as_ptr(),
            columns.as_ptr(),
        )
    }) else {
        return Ok(None);
    };
    // 2. Without it: everything else but the answer's Python objects.
    let done = py.allow_threads(|| prepare(&inp, timestamp, nparts, max_records, max_bytes, keep));
    drop(inp); // releases the held tuples, with the GIL again
    let Some((size, groups, sealed)) = done else {
        return Ok(None);
    };
    // 3. Under the GIL: the answer.
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
