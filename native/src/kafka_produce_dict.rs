//! The column append's produce loop (`kafka_produce.rs`) with each record's headers in ONE dict
//! reused from record to record instead of a new list of `(name, value)` tuples per record.
//! confluent-kafka converts the headers to librdkafka's on the spot (`py_headers_to_c`: a list
//! and a dict both go through `py_header_to_c` per pair, a dict in its insertion order), so the
//! wire gets the same headers in the same order; what goes is the per-record list, one tuple
//! per per-record header and confluent-kafka's tuple check per header (micro, 2,000 records,
//! 12 headers of which 5 per record: 2.62 -> 1.95 us a `produce`, docs/benchmarks/s19-kafka.md).
//!
//! A shared column's value is put in the dict once; a per-record column's name keeps its place
//! (set first, in column order) and only its value is replaced per record. If `produce` kept a
//! reference to the dict (a recording stand-in does), the next record gets a fresh copy, so
//! what a caller kept never changes under it.
//!
//! Returns `False`, having produced nothing, where a dict cannot say the same or the plain case
//! does not hold: no header columns, a header name given twice (a dict keeps one), anything but
//! list/tuple columns and str names. The list loop (`produce_columns`) or its reference then runs.
//! Misaligned columns raise `ValueError` before the first record is produced; an exception from
//! `produce` (`BufferError`) propagates at once.
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::kafka_produce::{batch_of, per_record_column, Producer, Seq};

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn produce_columns_dict<'py>(
    py: Python<'py>,
    produce: &Bound<'py, PyAny>,
    topic: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    header_names: &Bound<'py, PyAny>,
    header_columns: &Bound<'py, PyAny>,
    ts: &Bound<'py, PyAny>,
    on_first: &Bound<'py, PyAny>,
    on_last: &Bound<'py, PyAny>,
) -> PyResult<bool> {
    let Some((keys, values, names, cols)) = batch_of(keys, values, header_names, header_columns)?
    else {
        return Ok(false);
    };
    let n = values.len();
    if names.is_empty() {
        return Ok(false); // no headers: the list loop passes None
    }
    let mut headers = PyDict::new(py);
    let mut per_record: Vec<(Bound<'py, PyString>, Seq<'py>)> = Vec::new();
    for (name, col) in names.iter().zip(cols.iter()) {
        let Ok(name) = name.downcast_exact::<PyString>() else {
            return Ok(false);
        };
        if headers.contains(name)? {
            return Ok(false); // a repeated name: one dict key cannot carry both
        }
        if col.downcast_exact::<PyBytes>().is_ok() {
            headers.set_item(name, &col)?;
            continue;
        }
        let Some(seq) = per_record_column(&col, n)? else {
            return Ok(false);
        };
        headers.set_item(name, py.None())?; // its place in the order; its value per record
        per_record.push((name.clone(), seq));
    }
    let producer = Producer {
        produce,
        topic,
        ts,
        on_first,
        on_last,
        n,
    };
    for i in 0..n {
        for (name, seq) in &per_record {
            headers.set_item(name, seq.get(i)?)?; // an existing key: its place is kept
        }
        producer.call(i, &values.get(i)?, &keys.get(i)?, headers.as_any())?;
        if headers.get_refcnt() > 1 {
            headers = headers.copy()?; // produce kept it: never change what it holds
        }
    }
    Ok(true)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(produce_columns_dict, m)?)
}
