//! The ledger's leaves straight from the embedded log's stored batch bodies: what
//! `ledger_batch.rs`'s `column_leaf_batch` returns (leaf hashes AND side-index columns), but read
//! from the inflated body of each stored batch (its sections as `adapters/sqlite_log/batch.py`
//! describes them) instead of from Python columns. No Python object is made per record: keys,
//! values and header values are slices of the body.
//!
//! The pure-Python reference is the column path: `core.ports.eventlog.EncodedColumns.columns()`
//! (the adapter's own decoder, `decode_body_columns`) into `LeafEncoder.column_batch`;
//! `tests/unit/test_ledger_stored_leaves.py` checks both give the same bytes on random batches.
//!
//! Anything unusual (a section running past the body, a non-UTF-8 header name, the pair header
//! layout, a field out of range for the leaf format or the side index) returns None: the caller
//! decodes the same bodies in Python and takes the column path, which raises the reference's
//! errors. The body's CRC (and the log's MAC chain) is checked by the log before it hands the
//! body out; nothing here trusts a length without a bounds check.
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use sha2::{Digest, Sha256};

use crate::dict_column::{key_text, Dict};
use crate::key_index::KeyIndex;
use crate::ledger_batch::{repeats_envelope, Out, VERSION};

// flags of the stored batch (adapters/sqlite_log/batch.py)
pub(crate) const TS_UNIFORM: u8 = 0x01;
pub(crate) const TS_WIDE: u8 = 0x02;
pub(crate) const KEYS_NULL: u8 = 0x04;
pub(crate) const KEYS_MIXED: u8 = 0x08;
pub(crate) const VALUES_NULL: u8 = 0x10;
pub(crate) const VALUES_MIXED: u8 = 0x20;
pub(crate) const HAS_HEADERS: u8 = 0x40;
pub(crate) const HEADER_COLUMNS: u8 = 1;
const CONSTANT: u8 = 0;
const VARYING: u8 = 1;

pub(crate) fn take<'a>(body: &'a [u8], pos: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(len)?;
    let s = body.get(*pos..end)?;
    *pos = end;
    Some(s)
}

fn u16_at(b: &[u8], i: usize) -> usize {
    usize::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))
}

fn u32_at(b: &[u8], i: usize) -> usize {
    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as usize
}

/// A keys or values section: one slice per record (None: null).
pub(crate) fn bytes_section<'a>(
    body: &'a [u8],
    pos: &mut usize,
    n: usize,
    flags: u8,
    null: u8,
    mixed: u8,
) -> Option<Vec<Option<&'a [u8]>>> {
    if flags & null != 0 {
        return Some(vec![None; n]);
    }
    let lens = take(body, pos, n.checked_mul(4)?)?;
    let nulls = if flags & mixed != 0 {
        Some(take(body, pos, n)?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let v = take(body, pos, u32_at(lens, i))?;
        out.push(if nulls.is_some_and(|f| f[i] != 0) {
            None
        } else {
            Some(v)
        });
    }
    Some(out)
}

/// One header column: its name (u16 BE length || name, as the leaf input holds it) and its
/// values (one slice for every record, or one per record).
pub(crate) struct Column<'a> {
    head: Vec<u8>,
    pub(crate) name: &'a str,
    pub(crate) constant: Option<&'a [u8]>,
    pub(crate) values: Vec<&'a [u8]>,
}

impl<'a> Column<'a> {
    pub(crate) fn value(&self, i: usize) -> &'a [u8] {
        match self.constant {
            Some(v) => v,
            None => self.values[i],
        }
    }
}

/// The column header layout (`_decode_header_columns_py`'s format).
pub(crate) fn header_columns<'a>(
    body: &'a [u8],
    pos: &mut usize,
    n: usize,
) -> Option<Vec<Column<'a>>> {
    let m = u16_at(take(body, pos, 2)?, 0);
    if m == 0 {
        return None;
    }
    let lens = take(body, pos, 2 * m)?;
    let mut names = Vec::with_capacity(m);
    for j in 0..m {
        names.push(std::str::from_utf8(take(body, pos, u16_at(lens, j))?).ok()?);
    }
    let kinds = take(body, pos, m)?;
    let mut cols = Vec::with_capacity(m);
    for (name, &kind) in names.into_iter().zip(kinds) {
        let mut head = Vec::with_capacity(2 + name.len());
        head.extend_from_slice(&(name.len() as u16).to_be_bytes());
        head.extend_from_slice(name.as_bytes());
        let (constant, values) = match kind {
            CONSTANT => {
                let size = u32_at(take(body, pos, 4)?, 0);
                (Some(take(body, pos, size)?), Vec::new())
            }
            VARYING => {
                let lens = take(body, pos, n.checked_mul(4)?)?;
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(take(body, pos, u32_at(lens, i))?);
                }
                (None, v)
            }
            _ => return None,
        };
        cols.push(Column {
            head,
            name,
            constant,
            values,
        });
    }
    Some(cols)
}

/// The last dictionary entry one output column looked up: a constant header column hands the
/// same slice to every record, so its lookup is done once per batch.
#[derive(Clone, Copy)]
struct Memo {
    ptr: usize,
    len: usize,
    alt: bool,
    idx: i32,
}

impl Memo {
    const EMPTY: Memo = Memo {
        ptr: 0,
        len: usize::MAX,
        alt: false,
        idx: -1,
    };
}

/// Push the index of `raw` (None: null) into `d`; `alt` marks key-derived text.
fn put(
    py: Python<'_>,
    d: &mut Dict,
    memo: &mut Memo,
    raw: Option<&[u8]>,
    alt: bool,
) -> PyResult<()> {
    let Some(raw) = raw else {
        d.null();
        return Ok(());
    };
    let (ptr, len) = (raw.as_ptr() as usize, raw.len());
    if memo.ptr == ptr && memo.len == len && memo.alt == alt {
        d.push_idx(memo.idx);
        return Ok(());
    }
    let idx = d.index_raw(raw, alt, || match std::str::from_utf8(raw) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) if alt => Ok(key_text(raw)),
        // Python's own decoder, so the replacement text is the reference's
        Err(_) => PyBytes::new(py, raw)
            .call_method1(intern!(py, "decode"), ("utf-8", "replace"))?
            .extract::<String>(),
    })?;
    *memo = Memo { ptr, len, alt, idx };
    d.push_idx(idx);
    Ok(())
}

/// A run of the leaf input's headers part: `fixed[a..b]` (the same for every record of the
/// piece), or the length and value of varying column `j`.
enum Seg {
    Fixed(usize, usize),
    Var(usize),
}

fn digest_field(v: Option<&[u8]>, buf: &mut Vec<u8>) {
    match v {
        None => buf.push(0x00),
        Some(b) => {
            buf.push(0x01);
            buf.extend_from_slice(&Sha256::digest(b));
        }
    }
}

/// One piece: records `start..stop` of a stored batch, its sections read and its leaf-input
/// runs built (no Python object touched after `parse`, so its hashing may run without the GIL).
struct Piece<'a> {
    topic: String,
    part: u32,
    base_off: u64,
    start: usize,
    stop: usize,
    first: usize, // index in the call's output of record `start`
    times: Vec<i64>,
    keys: Vec<Option<&'a [u8]>>,
    values: Vec<Option<&'a [u8]>>,
    cols: Vec<Column<'a>>,
    slots: [Option<usize>; 5], // source, action, type, subject, tenant
    head: Vec<u8>,
    fixed: Vec<u8>,
    segs: Vec<Seg>,
}

/// The piece's fields, `p` minus its body (`body`, item 9, the caller holds). None when it
/// needs the Python path.
fn parse<'a>(p: &Bound<'_, PyTuple>, body: &'a [u8], first: usize) -> Option<Piece<'a>> {
    let (topic, part, base_off, start, stop, count, flags, layout, base_ts) = p
        .get_slice(0, 9)
        .extract::<(String, u32, u64, usize, usize, usize, u8, u8, i64)>()
        .ok()?;
    let mut pos = p.get_item(10).ok()?.extract::<usize>().ok()?;
    let n = count;
    if topic.len() > 0xFFFF || start > stop || stop > n || i32::try_from(part).is_err() {
        return None;
    }
    if stop > start {
        // offsets ascend: the last one bounds them all (an i64 in the side index)
        i64::try_from(base_off.checked_add((stop - 1) as u64)?).ok()?;
    }
    // 1. the sections, in their stored order
    let times: Vec<i64> = if flags & TS_UNIFORM != 0 {
        vec![base_ts; n]
    } else if flags & TS_WIDE != 0 {
        let raw = take(body, &mut pos, n.checked_mul(8)?)?;
        raw.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    } else {
        let raw = take(body, &mut pos, n.checked_mul(4)?)?;
        (0..n)
            .map(|i| base_ts.checked_add(u32_at(raw, i) as i64))
            .collect::<Option<Vec<i64>>>()?
    };
    let keys = bytes_section(body, &mut pos, n, flags, KEYS_NULL, KEYS_MIXED)?;
    let values = bytes_section(body, &mut pos, n, flags, VALUES_NULL, VALUES_MIXED)?;
    let cols = if flags & HAS_HEADERS == 0 {
        Vec::new()
    } else if layout == HEADER_COLUMNS {
        header_columns(body, &mut pos, n)?
    } else {
        return None; // the pair layout: the Python decoder
    };
    // 2. the query headers; an envelope header in two columns: the Python reference (which
    //    reads it as absent, and verify names the record)
    if repeats_envelope(cols.iter().map(|c| c.name)) {
        return None;
    }
    let mut slots: [Option<usize>; 5] = [None; 5];
    for (j, c) in cols.iter().enumerate() {
        let s = match c.name {
            "ce_source" => 0,
            "hub_action" => 1,
            "ce_type" => 2,
            "ce_subject" => 3,
            "ce_tenant" => 4,
            _ => continue,
        };
        slots[s] = Some(j);
    }
    let m = cols.len() as u32;
    let mut head = Vec::with_capacity(7 + topic.len());
    head.push(0x00);
    head.push(VERSION);
    head.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    head.extend_from_slice(topic.as_bytes());
    head.extend_from_slice(&part.to_be_bytes());
    // The headers part of the leaf input, once per piece: the count, then each constant
    // column's bytes (name, length, value) and each varying column's name joined into fixed
    // runs, so a record adds only its varying values between them (rdtsc profile, 200k
    // leaves of 10 envelope headers, 7 constant: the field-by-field copy was 9% of the call).
    let mut fixed: Vec<u8> = m.to_be_bytes().to_vec();
    let mut segs: Vec<Seg> = Vec::with_capacity(2 * cols.len() + 1);
    let mut from = 0;
    for (j, c) in cols.iter().enumerate() {
        fixed.extend_from_slice(&c.head);
        if let Some(v) = c.constant {
            fixed.extend_from_slice(&(v.len() as u32).to_be_bytes());
            fixed.extend_from_slice(v);
        } else {
            segs.push(Seg::Fixed(from, fixed.len()));
            from = fixed.len();
            segs.push(Seg::Var(j));
        }
    }
    segs.push(Seg::Fixed(from, fixed.len()));
    Some(Piece {
        topic,
        part,
        base_off,
        start,
        stop,
        first,
        times,
        keys,
        values,
        cols,
        slots,
        head,
        fixed,
        segs,
    })
}

/// The leaf hashes of output records `lo..hi` into `out` (32 bytes each, `lo` first), and the
/// key digests of those whose resource is their key into `kd` (same indexing; empty when no
/// piece needs them). Pure Rust over slices: runs without the GIL, on any thread.
fn hash_range(pieces: &[Piece<'_>], lo: usize, hi: usize, out: &mut [u8], kd: &mut [[u8; 32]]) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for pc in pieces {
        let (a, b) = (pc.first.max(lo), (pc.first + pc.stop - pc.start).min(hi));
        let keep = pc.slots[3].is_none() && !kd.is_empty();
        for g in a..b {
            let i = pc.start + (g - pc.first);
            buf.clear();
            buf.extend_from_slice(&pc.head);
            buf.extend_from_slice(&(pc.base_off + i as u64).to_be_bytes());
            buf.extend_from_slice(&pc.times[i].to_be_bytes());
            let key_digest = KeyIndex::digest(pc.keys[i], &mut buf);
            if let (true, Some(d)) = (keep, key_digest) {
                kd[g - lo] = d;
            }
            for seg in &pc.segs {
                match *seg {
                    Seg::Fixed(x, y) => buf.extend_from_slice(&pc.fixed[x..y]),
                    Seg::Var(j) => {
                        let v = pc.cols[j].values[i];
                        buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
                        buf.extend_from_slice(v);
                    }
                }
            }
            digest_field(pc.values[i], &mut buf);
            let at = 32 * (g - lo);
            out[at..at + 32].copy_from_slice(&Sha256::digest(&buf[..]));
        }
    }
}

/// Below this many leaves per thread a call hashes on one thread (a spawn costs ~20-50 us).
const PER_THREAD_MIN: usize = 4096;

/// The leaf hashes of every piece into `out`, on up to `threads` threads, without the GIL.
fn hash_all(
    py: Python<'_>,
    pieces: &[Piece<'_>],
    out: &mut [u8],
    kd: &mut [[u8; 32]],
    threads: usize,
) {
    let total = out.len() / 32;
    let threads = threads.clamp(1, 8).min(total / PER_THREAD_MIN).max(1);
    py.allow_threads(|| {
        if threads == 1 {
            hash_range(pieces, 0, total, out, kd);
            return;
        }
        let per = total.div_ceil(threads);
        std::thread::scope(|s| {
            let (mut out, mut kd) = (out, kd);
            let mut lo = 0;
            let mut mine = None;
            while lo < total {
                let hi = (lo + per).min(total);
                let (o, rest) = out.split_at_mut(32 * (hi - lo));
                out = rest;
                let k = if kd.is_empty() {
                    &mut [][..]
                } else {
                    let (k, rest) = kd.split_at_mut(hi - lo);
                    kd = rest;
                    k
                };
                if lo == 0 {
                    mine = Some((o, k)); // this thread's share, hashed after the spawns
                } else {
                    s.spawn(move || hash_range(pieces, lo, hi, o, k));
                }
                lo = hi;
            }
            if let Some((o, k)) = mine {
                hash_range(pieces, 0, per.min(total), o, k);
            }
        });
    });
}

/// The side-index fields of one piece's records (with the GIL: a non-UTF-8 header value is
/// decoded by Python, as the reference does).
fn side_index(
    py: Python<'_>,
    out: &mut Out,
    keys: &mut KeyIndex,
    pc: &Piece<'_>,
    kd: &[[u8; 32]],
) -> PyResult<()> {
    let mut memos = [Memo::EMPTY; 4]; // slices of another body may reuse an address
    let topic_idx = out
        .topics
        .index_raw(pc.topic.as_bytes(), false, || Ok(pc.topic.clone()))?;
    let cols = &pc.cols;
    let get = |s: Option<usize>, i: usize| s.map(|j| cols[j].value(i));
    for i in pc.start..pc.stop {
        let g = pc.first + (i - pc.start);
        out.parts.extend_from_slice(&(pc.part as i32).to_le_bytes());
        out.offsets
            .extend_from_slice(&((pc.base_off + i as u64) as i64).to_le_bytes());
        out.times.extend_from_slice(&pc.times[i].to_le_bytes());
        out.topics.push_idx(topic_idx);
        put(
            py,
            &mut out.actors,
            &mut memos[0],
            get(pc.slots[0], i),
            false,
        )?;
        let act = match get(pc.slots[1], i) {
            Some(a) if !a.is_empty() => Some(a),
            _ => get(pc.slots[2], i),
        };
        put(py, &mut out.actions, &mut memos[1], act, false)?;
        match get(pc.slots[3], i) {
            Some(s) => put(py, &mut out.resources, &mut memos[2], Some(s), false)?,
            None => {
                let key = pc.keys[i];
                keys.push_resource(&mut out.resources, key, key.map(|_| kd[g]))?
            }
        }
        put(
            py,
            &mut out.tenants,
            &mut memos[3],
            get(pc.slots[4], i),
            false,
        )?;
    }
    Ok(())
}

/// What `column_leaf_batch` returns for the records of `pieces`, in order, read from stored
/// batch bodies: each piece is `(topic, partition, base offset, start, stop, record count,
/// flags, header layout, base timestamp, body, where the sections start)`, records
/// `start..stop` of the batch (`core.ports.eventlog.EncodedBatch`). None when anything is
/// unusual: the caller decodes the bodies in Python and takes the column path.
///
/// The leaf hashes are computed without the GIL (the bodies are immutable `bytes` this call
/// holds), on up to `threads` threads when the call has at least 4,096 leaves per thread:
/// each thread hashes a contiguous range of the output, so the bytes do not depend on the
/// split (`tests/unit/test_ledger_stored_leaves.py` compares every split with the reference).
#[pyfunction]
#[pyo3(signature = (pieces, threads = 1, strings = true))]
fn stored_leaf_batch<'py>(
    py: Python<'py>,
    pieces: &Bound<'py, PyList>,
    threads: usize,
    strings: bool,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let mut tuples = Vec::with_capacity(pieces.len());
    let mut bodies = Vec::with_capacity(pieces.len());
    for p in pieces.iter() {
        let Ok(p) = p.downcast_into::<PyTuple>() else {
            return Ok(None);
        };
        if p.len() != 11 {
            return Ok(None);
        }
        let Ok(body) = p.get_item(9)?.downcast_into::<PyBytes>() else {
            return Ok(None);
        };
        tuples.push(p);
        bodies.push(body);
    }
    let mut parsed = Vec::with_capacity(tuples.len());
    let mut total = 0usize;
    for (p, body) in tuples.iter().zip(&bodies) {
        let Some(pc) = parse(p, body.as_bytes(), total) else {
            return Ok(None);
        };
        total += pc.stop - pc.start;
        parsed.push(pc);
    }
    let mut out = Out::new(0);
    out.parts.reserve(4 * total);
    out.offsets.reserve(8 * total);
    out.times.reserve(8 * total);
    for d in [
        &mut out.topics,
        &mut out.actors,
        &mut out.actions,
        &mut out.resources,
        &mut out.tenants,
    ] {
        d.index.reserve(4 * total); // one int32 per record: no regrowth in the loop
    }
    // key digests, kept from the hashing for the resource dictionary when a piece has no
    // `ce_subject` column (zeroed pages: untouched unless written)
    let mut kd: Vec<[u8; 32]> = if parsed.iter().any(|pc| pc.slots[3].is_none()) {
        vec![[0u8; 32]; total]
    } else {
        Vec::new()
    };
    // The leaf hashes are written in place into the bytes handed back (not into a vector
    // copied afterwards): a 200k-leaf call made 6.4 MB of fresh pages twice, and page faults
    // were ~12% of the call (perf).
    let hashes = PyBytes::new_with(py, 32 * total, |h| {
        hash_all(py, &parsed, h, &mut kd, threads);
        Ok(())
    })?;
    let mut keys = KeyIndex::default();
    for pc in &parsed {
        side_index(py, &mut out, &mut keys, pc, &kd)?;
    }
    // finish's first item is `out.hashes` (empty here): this call's hashes replace it
    let mut items: Vec<Bound<'py, PyAny>> = out.finish_with(py, strings)?.iter().collect();
    items[0] = hashes.into_any();
    Ok(Some(PyTuple::new(py, items)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(stored_leaf_batch, m)?)?;
    Ok(())
}
