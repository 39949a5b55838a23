//! A whole ledger batch in one call: for every log record its RFC 9162 leaf hash (the
//! version-1 leaf input of `audit/leaf.py`, as `leaves.rs` builds it) AND the side-index
//! columns the ledger stores beside the tree (topic, partition, offset, log time, actor,
//! action, resource, tenant), as packed buffers and dictionaries that Arrow takes without a
//! per-record Python object. The pure-Python reference is `ledger.leaves.LeafEncoder`
//! (`encode` + `query_columns`); `tests/unit/test_native_ledger_batch.py` checks both give the
//! same leaf hashes, the same columns and the same side-index bytes on random records.
//!
//! Query columns, exactly as `ledger.leaves.query_columns`:
//! actor = `ce_source`; action = `hub_action` when present and non-empty, else `ce_type`;
//! resource = `ce_subject`, else the key as UTF-8 (`0x<hex>` when not UTF-8); tenant =
//! `ce_tenant`; header values decode as UTF-8 with U+FFFD for bad bytes (an invalid value is
//! handed to Python's own `bytes.decode(..., "replace")`, so the text is the reference's).
//!
//! A record carrying an envelope header (`ce_*`, `hub_*`, `content-type`) more than once
//! returns None for the batch (see `repeats_envelope`): the reference reads such a header as
//! absent and `hub ledger verify` names the record, both in Python.
//!
//! Anything the reference would treat differently (a field of another type, a value out of
//! range for the side index's int32/int64 columns, a non-UTF-8 name) returns None: the caller
//! takes the Python path, which raises the reference's own error.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use sha2::{Digest, Sha256};

use crate::dict_column::{key_text, Dict};
use crate::key_index::KeyIndex;

pub(crate) const VERSION: u8 = 1;

/// Whether `name` is an envelope header (`domain.envelope.is_envelope_header`).
pub(crate) fn is_envelope(name: &str) -> bool {
    name.starts_with("ce_") || name.starts_with("hub_") || name == "content-type"
}

/// Whether an envelope header name occurs twice in `names` (a record's or a batch's header
/// names): the native passes then decline the batch and the Python reference takes it.
pub(crate) fn repeats_envelope<'a>(names: impl IntoIterator<Item = &'a str>) -> bool {
    let mut seen: Vec<&str> = Vec::with_capacity(16);
    for name in names {
        if is_envelope(name) {
            if seen.contains(&name) {
                return true;
            }
            seen.push(name);
        }
    }
    false
}

/// UTF-8 with U+FFFD for bad bytes, by Python's own decoder when the bytes are not valid.
fn replace_text(v: &Bound<'_, PyBytes>) -> PyResult<String> {
    match std::str::from_utf8(v.as_bytes()) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => v
            .call_method1(intern!(v.py(), "decode"), ("utf-8", "replace"))?
            .extract::<String>(),
    }
}

fn digest_field(obj: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> Option<()> {
    if obj.is_none() {
        buf.push(0x00);
        return Some(());
    }
    let b = obj.downcast::<PyBytes>().ok()?;
    buf.push(0x01);
    buf.extend_from_slice(&Sha256::digest(b.as_bytes()));
    Some(())
}

struct Query<'py> {
    source: Option<Bound<'py, PyBytes>>,
    action: Option<Bound<'py, PyBytes>>,
    ctype: Option<Bound<'py, PyBytes>>,
    subject: Option<Bound<'py, PyBytes>>,
    tenant: Option<Bound<'py, PyBytes>>,
}

struct Fields<'py> {
    topic: Bound<'py, PyString>,
    part: i32,
    offset: i64,
    ts: i64,
    key: Bound<'py, PyAny>,
    query: Query<'py>,
}

/// `0x00 || leaf input` of one record into `buf`, and its side-index fields; None when the
/// record needs the Python path.
fn record<'py>(
    py: Python<'py>,
    rec: &Bound<'py, PyAny>,
    buf: &mut Vec<u8>,
) -> PyResult<Option<Fields<'py>>> {
    let topic_obj = rec.getattr(intern!(py, "topic"))?;
    let Ok(topic) = topic_obj.downcast_into::<PyString>() else {
        return Ok(None);
    };
    let Ok(tname) = topic.to_str() else {
        return Ok(None);
    };
    if tname.len() > 0xFFFF {
        return Ok(None);
    }
    let Ok(part) = rec.getattr(intern!(py, "partition"))?.extract::<u32>() else {
        return Ok(None);
    };
    let Ok(offset) = rec.getattr(intern!(py, "offset"))?.extract::<u64>() else {
        return Ok(None);
    };
    let Ok(ts) = rec.getattr(intern!(py, "timestamp_ms"))?.extract::<i64>() else {
        return Ok(None);
    };
    // the side index keeps partition as int32 and offset as int64: others go the Python way
    let (Ok(part32), Ok(off64)) = (i32::try_from(part), i64::try_from(offset)) else {
        return Ok(None);
    };
    buf.push(0x00);
    buf.push(VERSION);
    buf.extend_from_slice(&(tname.len() as u16).to_be_bytes());
    buf.extend_from_slice(tname.as_bytes());
    buf.extend_from_slice(&part.to_be_bytes());
    buf.extend_from_slice(&offset.to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    let key = rec.getattr(intern!(py, "key"))?;
    if digest_field(&key, buf).is_none() {
        return Ok(None);
    }
    let headers = rec.getattr(intern!(py, "headers"))?;
    let pairs: Vec<Bound<'py, PyAny>> = if let Ok(t) = headers.downcast::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = headers.downcast::<PyList>() {
        l.iter().collect()
    } else {
        return Ok(None);
    };
    if pairs.len() > u32::MAX as usize {
        return Ok(None);
    }
    let mut q = Query {
        source: None,
        action: None,
        ctype: None,
        subject: None,
        tenant: None,
    };
    buf.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    let mut names: Vec<Bound<'py, PyString>> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let Ok(pair) = pair.downcast_into::<PyTuple>() else {
            return Ok(None);
        };
        if pair.len() != 2 {
            return Ok(None);
        }
        let Ok(name_obj) = pair.get_item(0)?.downcast_into::<PyString>() else {
            return Ok(None);
        };
        names.push(name_obj.clone());
        let Ok(name) = name_obj.to_str() else {
            return Ok(None);
        };
        let Ok(value) = pair.get_item(1)?.downcast_into::<PyBytes>() else {
            return Ok(None);
        };
        let v = value.as_bytes();
        if name.len() > 0xFFFF || v.len() > u32::MAX as usize {
            return Ok(None);
        }
        buf.extend_from_slice(&(name.len() as u16).to_be_bytes());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
        buf.extend_from_slice(v);
        let slot = match name {
            "ce_source" => &mut q.source,
            "hub_action" => &mut q.action,
            "ce_type" => &mut q.ctype,
            "ce_subject" => &mut q.subject,
            "ce_tenant" => &mut q.tenant,
            _ => continue,
        };
        *slot = Some(value);
    }
    // an envelope header twice: the reference reads it as absent (and verify names it)
    let mut texts: Vec<&str> = Vec::with_capacity(names.len());
    for n in &names {
        let Ok(t) = n.to_str() else { return Ok(None) };
        texts.push(t);
    }
    if repeats_envelope(texts) {
        return Ok(None);
    }
    if digest_field(&rec.getattr(intern!(py, "value"))?, buf).is_none() {
        return Ok(None);
    }
    Ok(Some(Fields {
        topic,
        part: part32,
        offset: off64,
        ts,
        key,
        query: q,
    }))
}

/// `put_header` of a header column's cell (borrowed: no reference taken per record).
fn put_cell(d: &mut Dict, v: Option<&Bound<'_, PyBytes>>) -> PyResult<()> {
    match v {
        None => {
            d.null();
            Ok(())
        }
        Some(b) => d.put(b.as_any(), b.as_bytes(), false, || replace_text(b)),
    }
}

fn put_header(d: &mut Dict, v: &Option<Bound<'_, PyBytes>>) -> PyResult<()> {
    match v {
        None => {
            d.null();
            Ok(())
        }
        Some(b) => d.put(b.as_any(), b.as_bytes(), false, || replace_text(b)),
    }
}

/// The outputs of a batch, record by record.
pub(crate) struct Out {
    pub(crate) hashes: Vec<u8>,
    pub(crate) parts: Vec<u8>,
    pub(crate) offsets: Vec<u8>,
    pub(crate) times: Vec<u8>,
    pub(crate) topics: Dict,
    pub(crate) actors: Dict,
    pub(crate) actions: Dict,
    pub(crate) resources: Dict,
    pub(crate) tenants: Dict,
}

impl Out {
    pub(crate) fn new(n: usize) -> Self {
        Out {
            hashes: Vec::with_capacity(n * 32),
            parts: Vec::with_capacity(n * 4),
            offsets: Vec::with_capacity(n * 8),
            times: Vec::with_capacity(n * 8),
            topics: Dict::default(),
            actors: Dict::default(),
            actions: Dict::default(),
            resources: Dict::default(),
            tenants: Dict::default(),
        }
    }

    /// One record's leaf hash (of `buf`, `0x00 || leaf input`) and its partition, offset and
    /// log time (the text columns are the caller's: each source looks its text up its own way).
    pub(crate) fn leaf(&mut self, buf: &[u8], part: i32, offset: i64, ts: i64) {
        self.hashes.extend_from_slice(&Sha256::digest(buf));
        self.parts.extend_from_slice(&part.to_le_bytes());
        self.offsets.extend_from_slice(&offset.to_le_bytes());
        self.times.extend_from_slice(&ts.to_le_bytes());
    }

    /// One record: its leaf hash (of `buf`, `0x00 || leaf input`) and side-index fields.
    fn push(&mut self, buf: &[u8], f: &Fields<'_>) -> PyResult<()> {
        self.leaf(buf, f.part, f.offset, f.ts);
        let tb = f.topic.to_str()?;
        self.topics
            .put(f.topic.as_any(), tb.as_bytes(), false, || Ok(tb.to_owned()))?;
        let q = &f.query;
        put_header(&mut self.actors, &q.source)?;
        let act = match &q.action {
            Some(a) if !a.as_bytes().is_empty() => &q.action,
            _ => &q.ctype,
        };
        put_header(&mut self.actions, act)?;
        if q.subject.is_some() {
            put_header(&mut self.resources, &q.subject)?;
        } else if f.key.is_none() {
            self.resources.null();
        } else {
            let k = f.key.downcast::<PyBytes>()?.as_bytes();
            self.resources.put(&f.key, k, true, || Ok(key_text(k)))?;
        }
        put_header(&mut self.tenants, &q.tenant)
    }

    pub(crate) fn finish<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.finish_with(py, true)
    }

    /// `finish`; without `strings` each dictionary's Arrow string buffers are not built (None:
    /// the caller builds a column from its dictionary if it needs one). `hub ledger verify`
    /// compares a recomputed batch through its dictionaries: building ~2 MB of expanded
    /// strings per 50k leaves only to drop them was ~7% of a verify (perf, session 22).
    pub(crate) fn finish_with<'py>(
        self,
        py: Python<'py>,
        strings: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let dict = |d: Dict| -> PyResult<Bound<'py, PyTuple>> {
            let built = if strings { d.arrow_py(py)? } else { None };
            let arrow = match built {
                Some((offsets, data, validity)) => PyTuple::new(
                    py,
                    [
                        offsets.into_any(),
                        data.into_any(),
                        match validity {
                            Some(v) => v.into_any(),
                            None => py.None().into_bound(py),
                        },
                    ],
                )?
                .into_any(),
                None => py.None().into_bound(py),
            };
            PyTuple::new(
                py,
                [
                    PyList::new(py, d.values)?.into_any(),
                    PyBytes::new(py, &d.index).into_any(),
                    arrow,
                ],
            )
        };
        PyTuple::new(
            py,
            [
                PyBytes::new(py, &self.hashes).into_any(),
                dict(self.topics)?.into_any(),
                PyBytes::new(py, &self.parts).into_any(),
                PyBytes::new(py, &self.offsets).into_any(),
                PyBytes::new(py, &self.times).into_any(),
                dict(self.actors)?.into_any(),
                dict(self.actions)?.into_any(),
                dict(self.resources)?.into_any(),
                dict(self.tenants)?.into_any(),
            ],
        )
    }
}

/// Packed leaf hashes, then the side-index columns: topic (dictionary), partitions (int32 LE),
/// offsets and log times (int64 LE), actor, action, resource, tenant (dictionaries: distinct
/// strings + int32 LE indexes, -1 for null, + the column as Arrow string buffers or None). None when a record needs the Python path.
#[pyfunction]
fn record_leaf_batch<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let mut out = Out::new(records.len());
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for rec in records.iter() {
        buf.clear();
        let Some(f) = record(py, &rec, &mut buf)? else {
            return Ok(None);
        };
        out.push(&buf, &f)?;
    }
    Ok(Some(out.finish(py)?))
}

/// The items of a list or tuple (None for anything else, or another length than `n`).
fn items<'py>(obj: &Bound<'py, PyAny>, n: usize) -> Option<Vec<Bound<'py, PyAny>>> {
    let v: Vec<Bound<'py, PyAny>> = if let Ok(l) = obj.downcast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = obj.downcast::<PyTuple>() {
        t.iter().collect()
    } else {
        return None;
    };
    (v.len() == n).then_some(v)
}

/// What `record_leaf_batch` returns for the records of `chunks`, read from columns: each chunk
/// is `(topic, partition, offsets, timestamps, keys, values, header names, header columns)` as
/// `core.ports.eventlog.RecordColumns` holds them in its column form (offsets: the first
/// offset as an int when dense, else a list). No per-record Python object is read but the
/// column items themselves. None when anything is unusual: the caller takes the record path.
#[pyfunction]
fn column_leaf_batch<'py>(
    py: Python<'py>,
    chunks: &Bound<'py, PyList>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let mut total = 0usize;
    for c in chunks.iter() {
        let Ok(c) = c.downcast_into::<PyTuple>() else {
            return Ok(None);
        };
        if c.len() != 8 {
            return Ok(None);
        }
        let Ok(keys) = c.get_item(4)?.len() else {
            return Ok(None);
        };
        total += keys;
    }
    let mut out = Out::new(total);
    let mut key_index = KeyIndex::default();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for c in chunks.iter() {
        let c = c.downcast_into::<PyTuple>()?;
        let Ok(topic) = c.get_item(0)?.downcast_into::<PyString>() else {
            return Ok(None);
        };
        let Ok(tname) = topic.to_str() else {
            return Ok(None);
        };
        if tname.len() > 0xFFFF {
            return Ok(None);
        }
        let Ok(part) = c.get_item(1)?.extract::<u32>() else {
            return Ok(None);
        };
        let Ok(part32) = i32::try_from(part) else {
            return Ok(None);
        };
        let keys_obj = c.get_item(4)?;
        let n = keys_obj.len()?;
        let Some(keys) = items(&keys_obj, n) else {
            return Ok(None);
        };
        let Some(values) = items(&c.get_item(5)?, n) else {
            return Ok(None);
        };
        let Some(times) = items(&c.get_item(3)?, n) else {
            return Ok(None);
        };
        let offs_obj = c.get_item(2)?;
        let offsets: Vec<u64> = if let Ok(first) = offs_obj.extract::<u64>() {
            (0..n as u64)
                .map(|i| first.checked_add(i))
                .collect::<Option<Vec<u64>>>()
                .unwrap_or_default()
        } else {
            let Some(v) = items(&offs_obj, n) else {
                return Ok(None);
            };
            let mut o = Vec::with_capacity(n);
            for x in v {
                let Ok(x) = x.extract::<u64>() else {
                    return Ok(None);
                };
                o.push(x);
            }
            o
        };
        if offsets.len() != n {
            return Ok(None);
        }
        let Ok(names) = c.get_item(6)?.downcast_into::<PyTuple>() else {
            return Ok(None);
        };
        let m = names.len();
        let Some(col_objs) = items(&c.get_item(7)?, m) else {
            return Ok(None);
        };
        let mut heads: Vec<Vec<u8>> = Vec::with_capacity(m); // u16 length || name, per header
        let mut slots: [Option<usize>; 5] = [None; 5]; // source, action, type, subject, tenant
        for (j, name) in names.iter().enumerate() {
            let Ok(name) = name.downcast_into::<PyString>() else {
                return Ok(None);
            };
            let Ok(name) = name.to_str() else {
                return Ok(None);
            };
            if name.len() > 0xFFFF {
                return Ok(None);
            }
            let mut h = Vec::with_capacity(2 + name.len());
            h.extend_from_slice(&(name.len() as u16).to_be_bytes());
            h.extend_from_slice(name.as_bytes());
            heads.push(h);
            let slot = match name {
                "ce_source" => 0,
                "hub_action" => 1,
                "ce_type" => 2,
                "ce_subject" => 3,
                "ce_tenant" => 4,
                _ => continue,
            };
            slots[slot] = Some(j);
        }
        // an envelope header in two columns: the reference reads it as absent
        if repeats_envelope(
            heads
                .iter()
                .map(|h| std::str::from_utf8(&h[2..]).unwrap_or("")),
        ) {
            return Ok(None);
        }
        let mut cols: Vec<Vec<Bound<'py, PyBytes>>> = Vec::with_capacity(m);
        for obj in &col_objs {
            let Some(v) = items(obj, n) else {
                return Ok(None);
            };
            let mut col = Vec::with_capacity(n);
            for x in v {
                let Ok(b) = x.downcast_into::<PyBytes>() else {
                    return Ok(None);
                };
                if b.as_bytes().len() > u32::MAX as usize {
                    return Ok(None);
                }
                col.push(b);
            }
            cols.push(col);
        }
        let head_len = 2 + tname.len();
        // Per record below: no Python object is cloned or kept. The topic's dictionary index
        // is found once per chunk; the key is hashed once and its resource index found by that
        // digest (`key_index.rs`), as `stored_leaf_batch` does: the per-address map of
        // `Dict::put` grew by one entry (and one kept reference) per distinct key object,
        // which made this path ~2x slower per leaf than the stored one on the same records.
        let topic_ix = out
            .topics
            .index_raw(tname.as_bytes(), false, || Ok(tname.to_owned()))?;
        for i in 0..n {
            let Ok(ts) = times[i].extract::<i64>() else {
                return Ok(None);
            };
            let Ok(off64) = i64::try_from(offsets[i]) else {
                return Ok(None);
            };
            let key: Option<&[u8]> = if keys[i].is_none() {
                None
            } else {
                let Ok(k) = keys[i].downcast::<PyBytes>() else {
                    return Ok(None);
                };
                Some(k.as_bytes())
            };
            buf.clear();
            buf.reserve(head_len + 64);
            buf.push(0x00);
            buf.push(VERSION);
            buf.extend_from_slice(&(tname.len() as u16).to_be_bytes());
            buf.extend_from_slice(tname.as_bytes());
            buf.extend_from_slice(&part.to_be_bytes());
            buf.extend_from_slice(&offsets[i].to_be_bytes());
            buf.extend_from_slice(&ts.to_be_bytes());
            let key_digest = KeyIndex::digest(key, &mut buf);
            buf.extend_from_slice(&(m as u32).to_be_bytes());
            for (h, col) in heads.iter().zip(&cols) {
                let v = col[i].as_bytes();
                buf.extend_from_slice(h);
                buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
                buf.extend_from_slice(v);
            }
            if digest_field(&values[i], &mut buf).is_none() {
                return Ok(None);
            }
            out.leaf(&buf, part32, off64, ts);
            out.topics.push_idx(topic_ix);
            let cell = |s: Option<usize>| s.map(|j| &cols[j][i]);
            put_cell(&mut out.actors, cell(slots[0]))?;
            let action = match cell(slots[1]) {
                Some(a) if !a.as_bytes().is_empty() => Some(a),
                _ => cell(slots[2]),
            };
            put_cell(&mut out.actions, action)?;
            match cell(slots[3]) {
                Some(subject) => put_cell(&mut out.resources, Some(subject))?,
                None => key_index.push_resource(&mut out.resources, key, key_digest)?,
            }
            put_cell(&mut out.tenants, cell(slots[4]))?;
        }
    }
    Ok(Some(out.finish(py)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(record_leaf_batch, m)?)?;
    m.add_function(wrap_pyfunction!(column_leaf_batch, m)?)?;
    Ok(())
}
