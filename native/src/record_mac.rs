//! The Kafka record MACs of a column batch in one call (`adapters.kafka_log.auth.record_macs`):
//! HMAC-SHA256 over exactly the bytes `auth.record_mac` joins (its pure-Python reference;
//! `tests/unit/test_native_record_mac.py` checks both give the same MACs). The HMAC is written
//! over sha2 (RFC 2104): the keyed inner and outer states and the batch's shared prefix (label,
//! topic, partition, timestamp) are hashed once and cloned per record.
use crate::metadata::{alloc, plain_class, set};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple, PyType};
use sha2::{Digest, Sha256};

const LABEL: &[u8] = b"hub.kafka.record.v1\n";

/// `auth._field`: a big-endian i64 length (-1 for None) and the bytes.
fn field(h: &mut Sha256, b: Option<&[u8]>) {
    match b {
        None => h.update((-1i64).to_be_bytes()),
        Some(b) => {
            h.update((b.len() as i64).to_be_bytes());
            h.update(b);
        }
    }
}

fn opt_bytes<'a>(o: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Option<&'a [u8]>> {
    if o.is_none() {
        return Ok(None);
    }
    match o.downcast::<PyBytes>() {
        Ok(b) => Ok(Some(b.as_bytes())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "record_macs: {what} must be bytes or None, not {}.",
            o.get_type().name()?
        ))),
    }
}

/// The HMAC's keyed inner and outer states (RFC 2104): a key longer than the block is hashed
/// first, then zero-padded to the block.
fn keyed(key: &[u8]) -> (Sha256, Sha256) {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    (inner, outer)
}

enum Column<'py> {
    Shared(Vec<u8>), // the name's and the value's fields, the same for every record
    PerRecord(Vec<u8>, Vec<Bound<'py, PyAny>>),
}

/// The MAC of every record of a column batch (all in `partition`, stamped `ts`), in order.
/// `label`: another MAC over the same encoding (`core.tenant_mac.LABEL`: the tenant MAC of
/// `auth.tenant_macs`); the record MAC's own by default.
#[pyfunction]
#[pyo3(signature = (key, topic, partition, ts, keys, values, header_names, header_columns, label=None))]
#[allow(clippy::too_many_arguments)]
fn record_macs<'py>(
    py: Python<'py>,
    key: &[u8],
    topic: &str,
    partition: u32,
    ts: i64,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    header_names: &Bound<'py, PyAny>,
    header_columns: &Bound<'py, PyAny>,
    label: Option<&[u8]>,
) -> PyResult<Bound<'py, PyList>> {
    let keys: Vec<Bound<'py, PyAny>> = keys.try_iter()?.collect::<PyResult<_>>()?;
    let values: Vec<Bound<'py, PyAny>> = values.try_iter()?.collect::<PyResult<_>>()?;
    let n = values.len();
    if keys.len() != n {
        return Err(PyValueError::new_err(format!(
            "record_macs: {} keys for {n} values.",
            keys.len()
        )));
    }
    let names: Vec<Bound<'py, PyAny>> = header_names.try_iter()?.collect::<PyResult<_>>()?;
    let cols: Vec<Bound<'py, PyAny>> = header_columns.try_iter()?.collect::<PyResult<_>>()?;
    if names.len() != cols.len() {
        return Err(PyValueError::new_err(format!(
            "record_macs: {} header names for {} header columns.",
            names.len(),
            cols.len()
        )));
    }
    let mut columns: Vec<Column<'py>> = Vec::with_capacity(cols.len());
    for (name, col) in names.iter().zip(cols.iter()) {
        let name = name
            .downcast::<PyString>()
            .map_err(|_| PyTypeError::new_err("record_macs: header names must be str."))?
            .to_str()?
            .as_bytes();
        let mut prefix = Vec::with_capacity(8 + name.len());
        prefix.extend_from_slice(&(name.len() as i64).to_be_bytes());
        prefix.extend_from_slice(name);
        if let Ok(b) = col.downcast::<PyBytes>() {
            let b = b.as_bytes();
            prefix.extend_from_slice(&(b.len() as i64).to_be_bytes());
            prefix.extend_from_slice(b);
            columns.push(Column::Shared(prefix));
        } else {
            let vals: Vec<Bound<'py, PyAny>> = col.try_iter()?.collect::<PyResult<_>>()?;
            if vals.len() != n {
                return Err(PyValueError::new_err(format!(
                    "record_macs: header column has {} values for {n} records.",
                    vals.len()
                )));
            }
            columns.push(Column::PerRecord(prefix, vals));
        }
    }
    let (mut inner, outer) = keyed(key);
    inner.update(label.unwrap_or(LABEL));
    field(&mut inner, Some(topic.as_bytes()));
    inner.update(partition.to_be_bytes());
    inner.update(ts.to_be_bytes());
    let out = PyList::empty(py);
    for i in 0..n {
        let mut h = inner.clone();
        field(&mut h, opt_bytes(&keys[i], "a key")?);
        field(&mut h, opt_bytes(&values[i], "a value")?);
        for c in &columns {
            match c {
                Column::Shared(b) => h.update(b),
                Column::PerRecord(prefix, vals) => {
                    h.update(prefix);
                    field(&mut h, opt_bytes(&vals[i], "a header value")?);
                }
            }
        }
        let mut o = outer.clone();
        o.update(h.finalize());
        out.append(PyBytes::new(py, &o.finalize()))?;
    }
    Ok(out)
}

/// The MAC of each `(topic, partition, key, value, headers, ts)` row (`auth.record_mac` of
/// each; the reader's verification of a fetched batch, whose rows need not share anything).
/// `label` as in `record_macs`.
#[pyfunction]
#[pyo3(signature = (key, rows, label=None))]
fn record_macs_rows<'py>(
    py: Python<'py>,
    key: &[u8],
    rows: &Bound<'py, PyAny>,
    label: Option<&[u8]>,
) -> PyResult<Bound<'py, PyList>> {
    let label = label.unwrap_or(LABEL);
    let (inner, outer) = keyed(key);
    let out = PyList::empty(py);
    for row in rows.try_iter()? {
        let row = row?;
        let (topic, partition, rkey, value, headers, ts): (
            String,
            u32,
            Bound<'py, PyAny>,
            Bound<'py, PyAny>,
            Bound<'py, PyAny>,
            i64,
        ) = row.extract()?;
        let mut h = inner.clone();
        h.update(label);
        field(&mut h, Some(topic.as_bytes()));
        h.update(partition.to_be_bytes());
        h.update(ts.to_be_bytes());
        field(&mut h, opt_bytes(&rkey, "a key")?);
        field(&mut h, opt_bytes(&value, "a value")?);
        if !headers.is_none() {
            for pair in headers.try_iter()? {
                let (name, v): (String, Bound<'py, PyAny>) = pair?.extract()?;
                field(&mut h, Some(name.as_bytes()));
                field(&mut h, opt_bytes(&v, "a header value")?);
            }
        }
        let mut o = outer.clone();
        o.update(h.finalize());
        out.append(PyBytes::new(py, &o.finalize()))?;
    }
    Ok(out)
}

/// The name of a `(name, value)` header pair, if it is a tuple of two starting with a str.
fn pair_name<'a, 'py>(pair: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, PyTuple>> {
    let t = pair.downcast::<PyTuple>().ok()?;
    if t.len() != 2 {
        return None;
    }
    Some(t)
}

fn name_is(t: &Bound<'_, PyTuple>, want: &str) -> PyResult<bool> {
    let name = t.get_item(0)?;
    Ok(match name.downcast::<PyString>() {
        Ok(s) => s.to_str()? == want,
        Err(_) => false,
    })
}

/// Constant-time equality of two MACs (`hmac.compare_digest` for bytes).
fn same_mac(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `auth.verified_run_py(cls, key, data, records)`: per record of one topic, the record as
/// readers see it (made by `cls`'s allocator, its slots set as the frozen dataclass's
/// `__init__` sets them: the same topic, partition, offset, timestamp, key and value objects,
/// the headers without the MAC header, on a `data` topic the tenant MAC right under it, and
/// the hub sequence under those) and its sequence value (24 bytes, else None) when its last
/// header is a valid record MAC; `(None, None)` otherwise (the caller's per-record rules
/// decide). `None` when `cls` is not a plain class (the reference then runs).
#[pyfunction]
fn verified_run<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyType>,
    key: &[u8],
    data: bool,
    records: &Bound<'py, PyList>,
) -> PyResult<Option<(Bound<'py, PyList>, Bound<'py, PyList>)>> {
    if !plain_class(cls) {
        return Ok(None);
    }
    let f = [
        PyString::intern(py, "topic"),
        PyString::intern(py, "partition"),
        PyString::intern(py, "offset"),
        PyString::intern(py, "timestamp_ms"),
        PyString::intern(py, "key"),
        PyString::intern(py, "value"),
        PyString::intern(py, "headers"),
    ];
    let (inner, outer) = keyed(key);
    let out = PyList::empty(py);
    let seqs = PyList::empty(py);
    for r in records.iter() {
        let Ok(headers) = r.getattr(&f[6])?.downcast_into::<PyTuple>() else {
            out.append(py.None())?;
            seqs.append(py.None())?;
            continue;
        };
        let n = headers.len();
        let last = if n > 0 {
            Some(headers.get_item(n - 1)?)
        } else {
            None
        };
        let given = match last.as_ref().and_then(|l| pair_name(l)) {
            Some(t) if name_is(t, MAC_HEADER)? => t.get_item(1)?,
            _ => {
                out.append(py.None())?;
                seqs.append(py.None())?;
                continue;
            }
        };
        let topic_o = r.getattr(&f[0])?;
        let partition_o = r.getattr(&f[1])?;
        let ts_o = r.getattr(&f[3])?;
        let rkey = r.getattr(&f[4])?;
        let value = r.getattr(&f[5])?;
        let topic: String = topic_o.extract()?;
        let partition: u32 = partition_o.extract()?;
        let ts: i64 = ts_o.extract()?;
        let mut h = inner.clone();
        h.update(LABEL);
        field(&mut h, Some(topic.as_bytes()));
        h.update(partition.to_be_bytes());
        h.update(ts.to_be_bytes());
        field(&mut h, opt_bytes(&rkey, "a key")?);
        field(&mut h, opt_bytes(&value, "a value")?);
        for i in 0..n - 1 {
            let (name, v): (String, Bound<'py, PyAny>) = headers.get_item(i)?.extract()?;
            field(&mut h, Some(name.as_bytes()));
            field(&mut h, opt_bytes(&v, "a header value")?);
        }
        let mut o = outer.clone();
        o.update(h.finalize());
        let valid = match given.downcast::<PyBytes>() {
            Ok(b) => same_mac(b.as_bytes(), &o.finalize()),
            Err(_) => false,
        };
        if !valid {
            out.append(py.None())?;
            seqs.append(py.None())?;
            continue;
        }
        let mut m = n - 1;
        if data && m > 0 {
            let t = headers.get_item(m - 1)?;
            if pair_name(&t).map(|t| name_is(t, TMAC_HEADER)).transpose()? == Some(true) {
                m -= 1;
            }
        }
        let mut seq = py.None().into_bound(py);
        if m > 0 {
            let t = headers.get_item(m - 1)?;
            if let Some(t) = pair_name(&t) {
                if name_is(t, SEQ_HEADER)? {
                    let v = t.get_item(1)?;
                    if v.is_exact_instance_of::<PyBytes>() && v.len()? == SEQ_BYTES {
                        seq = v.clone();
                    }
                    m -= 1;
                }
            }
        }
        let obj = alloc(py, cls)?;
        set(py, &obj, &f[0], &topic_o)?;
        set(py, &obj, &f[1], &partition_o)?;
        set(py, &obj, &f[2], &r.getattr(&f[2])?)?;
        set(py, &obj, &f[3], &ts_o)?;
        set(py, &obj, &f[4], &rkey)?;
        set(py, &obj, &f[5], &value)?;
        set(py, &obj, &f[6], headers.get_slice(0, m).as_any())?;
        out.append(obj)?;
        seqs.append(seq)?;
    }
    Ok(Some((out, seqs)))
}

const MAC_HEADER: &str = "__hub.mac";
const TMAC_HEADER: &str = "__hub.tmac";
const SEQ_HEADER: &str = "__hub.seq";
const SEQ_BYTES: usize = 24;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(record_macs, m)?)?;
    m.add_function(wrap_pyfunction!(record_macs_rows, m)?)?;
    m.add_function(wrap_pyfunction!(verified_run, m)?)
}
