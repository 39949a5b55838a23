//! A data-topic column batch's two MACs in one pass (`adapters.kafka_log.auth.both_macs`): per
//! record the tenant MAC (`core.tenant_mac`: its own key and label, over the `COVERED` header
//! columns only) and then the record MAC (`auth.record_mac`: over every header column and the
//! tenant MAC header right after them), exactly what `record_macs` under the tenant label and
//! then `record_macs` over the batch with the tenant MAC column appended give (the reference,
//! `auth.both_macs_py`; `tests/unit/test_native_both_macs.py` compares on random batches).
//! Why one pass: the two calls each walked the batch's Python objects (key, value, every per-record
//! header value: a downcast and a refcount each) and the second one took a new 2,000-item
//! column; here each record's objects are read once and both digests are made from them.
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use sha2::Sha256;

use crate::record_mac::{field, keyed, opt_bytes, LABEL};

enum Column<'py> {
    Shared(Vec<u8>), // the name's and the value's fields, the same for every record
    PerRecord(Vec<u8>, Vec<Bound<'py, PyAny>>),
}

fn column_into(h: &mut Sha256, c: &Column<'_>, i: usize) -> PyResult<()> {
    use sha2::Digest;
    match c {
        Column::Shared(b) => h.update(b),
        Column::PerRecord(prefix, vals) => {
            h.update(prefix);
            field(h, opt_bytes(&vals[i], "a header value")?);
        }
    }
    Ok(())
}

/// `(tenant_macs, record_macs)` of a column batch all in `partition`, stamped `ts`: the tenant
/// MAC of record i under `tenant_key` and `tenant_label` over the columns at `covered` (in that
/// order), its record MAC under `mac_key` over all the columns and then `(tmac_name, tmac)`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn both_macs<'py>(
    py: Python<'py>,
    mac_key: &[u8],
    tenant_key: &[u8],
    tenant_label: &[u8],
    tmac_name: &str,
    topic: &str,
    partition: u32,
    ts: i64,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    header_names: &Bound<'py, PyAny>,
    header_columns: &Bound<'py, PyAny>,
    covered: Vec<usize>,
) -> PyResult<Bound<'py, PyTuple>> {
    use sha2::Digest;
    let keys: Vec<Bound<'py, PyAny>> = keys.try_iter()?.collect::<PyResult<_>>()?;
    let values: Vec<Bound<'py, PyAny>> = values.try_iter()?.collect::<PyResult<_>>()?;
    let n = values.len();
    if keys.len() != n {
        return Err(PyValueError::new_err(format!(
            "both_macs: {} keys for {n} values.",
            keys.len()
        )));
    }
    let names: Vec<Bound<'py, PyAny>> = header_names.try_iter()?.collect::<PyResult<_>>()?;
    let cols: Vec<Bound<'py, PyAny>> = header_columns.try_iter()?.collect::<PyResult<_>>()?;
    if names.len() != cols.len() {
        return Err(PyValueError::new_err(format!(
            "both_macs: {} header names for {} header columns.",
            names.len(),
            cols.len()
        )));
    }
    if let Some(bad) = covered.iter().find(|&&c| c >= cols.len()) {
        return Err(PyValueError::new_err(format!(
            "both_macs: covered column {bad} of {} header columns.",
            cols.len()
        )));
    }
    let mut columns: Vec<Column<'py>> = Vec::with_capacity(cols.len());
    for (name, col) in names.iter().zip(cols.iter()) {
        let name = name
            .downcast::<PyString>()
            .map_err(|_| PyTypeError::new_err("both_macs: header names must be str."))?
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
                    "both_macs: header column has {} values for {n} records.",
                    vals.len()
                )));
            }
            columns.push(Column::PerRecord(prefix, vals));
        }
    }
    // the shared prefix of every record's message (label, topic, partition, ts), hashed once
    let prefixed = |key: &[u8], label: &[u8]| {
        let (mut inner, outer) = keyed(key);
        inner.update(label);
        field(&mut inner, Some(topic.as_bytes()));
        inner.update(partition.to_be_bytes());
        inner.update(ts.to_be_bytes());
        (inner, outer)
    };
    let (t_inner, t_outer) = prefixed(tenant_key, tenant_label);
    let (r_inner, r_outer) = prefixed(mac_key, LABEL);
    let mut tmac_field = Vec::with_capacity(8 + tmac_name.len() + 8);
    tmac_field.extend_from_slice(&(tmac_name.len() as i64).to_be_bytes());
    tmac_field.extend_from_slice(tmac_name.as_bytes());
    tmac_field.extend_from_slice(&32i64.to_be_bytes()); // an HMAC-SHA256
    let tmacs = PyList::empty(py);
    let macs = PyList::empty(py);
    for i in 0..n {
        let k = opt_bytes(&keys[i], "a key")?;
        let v = opt_bytes(&values[i], "a value")?;
        let mut t = t_inner.clone();
        field(&mut t, k);
        field(&mut t, v);
        for &c in &covered {
            column_into(&mut t, &columns[c], i)?;
        }
        let mut to = t_outer.clone();
        to.update(t.finalize());
        let tmac = to.finalize();
        let mut r = r_inner.clone();
        field(&mut r, k);
        field(&mut r, v);
        for c in &columns {
            column_into(&mut r, c, i)?;
        }
        r.update(&tmac_field);
        r.update(tmac);
        let mut ro = r_outer.clone();
        ro.update(r.finalize());
        tmacs.append(PyBytes::new(py, &tmac))?;
        macs.append(PyBytes::new(py, &ro.finalize()))?;
    }
    PyTuple::new(py, [tmacs, macs])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(both_macs, m)?)
}
