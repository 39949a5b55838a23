//! A run of consumed Kafka messages as the log's `StoredRecord`s in one call: the per-record
//! part of `KafkaEventLog._consume` (`adapters/kafka_log/batch.py`, `stored_run`). The pure-Python
//! `stored_run_py` is the reference; `tests/unit/test_s24_kafka_stored_run.py` checks both give
//! equal records (the very same header, key and value objects) and stop at the same message.
//!
//! Each message's methods are called as the reference calls them (`error`, `offset`, `headers`,
//! `key`, `value`, `timestamp`); the record is made by `StoredRecord`'s allocator and its slots
//! set as the frozen dataclass's `__init__` sets them (`metadata::alloc`/`set`). A message that
//! is not a plain record ends the run before it: the caller's per-message loop handles it.
//! Returns `None` when `cls` is not a plain class (the reference then runs).
use crate::metadata::{alloc, plain_class, set};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyString, PyTuple, PyType};

fn bytes_or_none(v: &Bound<'_, PyAny>) -> bool {
    v.is_none() || v.is_exact_instance_of::<PyBytes>()
}

/// `(records, index)`: `stored_run_py(cls, topic, partition, msgs, start, position, end, most)`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn stored_run<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyType>,
    topic: &Bound<'py, PyString>,
    partition: &Bound<'py, PyInt>,
    msgs: &Bound<'py, PyList>,
    start: usize,
    mut position: i64,
    end: i64,
    most: usize,
) -> PyResult<Option<(Bound<'py, PyList>, usize)>> {
    if !plain_class(cls) {
        return Ok(None);
    }
    let m = [
        PyString::intern(py, "error"),
        PyString::intern(py, "offset"),
        PyString::intern(py, "headers"),
        PyString::intern(py, "key"),
        PyString::intern(py, "value"),
        PyString::intern(py, "timestamp"),
    ];
    let f = [
        PyString::intern(py, "topic"),
        PyString::intern(py, "partition"),
        PyString::intern(py, "offset"),
        PyString::intern(py, "timestamp_ms"),
        PyString::intern(py, "key"),
        PyString::intern(py, "value"),
        PyString::intern(py, "headers"),
    ];
    let empty = PyTuple::empty(py);
    let mut out: Vec<Bound<'py, PyAny>> = Vec::new();
    let mut i = start;
    let n = msgs.len();
    while i < n && out.len() < most {
        let msg = msgs.get_item(i)?;
        if !msg.call_method0(&m[0])?.is_none() {
            break;
        }
        let offset = msg.call_method0(&m[1])?;
        if offset.is_none() {
            break;
        }
        let o: i64 = match offset.extract() {
            Ok(o) => o,
            Err(_) => break,
        };
        if o < position {
            break;
        }
        let raw = msg.call_method0(&m[2])?;
        let headers = if raw.is_none() {
            empty.clone()
        } else {
            let Ok(list) = raw.downcast::<PyList>() else {
                break;
            };
            let mut plain = true;
            for pair in list.iter() {
                let Ok(t) = pair.downcast::<PyTuple>() else {
                    plain = false;
                    break;
                };
                if t.len() < 2 || !t.get_item(1)?.is_exact_instance_of::<PyBytes>() {
                    plain = false;
                    break;
                }
            }
            if !plain {
                break;
            }
            list.to_tuple()
        };
        let key = msg.call_method0(&m[3])?;
        let value = msg.call_method0(&m[4])?;
        if !bytes_or_none(&key) || !bytes_or_none(&value) {
            break;
        }
        let stamp = msg.call_method0(&m[5])?.get_item(1)?;
        let obj = alloc(py, cls)?;
        set(py, &obj, &f[0], topic.as_any())?;
        set(py, &obj, &f[1], partition.as_any())?;
        set(py, &obj, &f[2], &offset)?;
        set(py, &obj, &f[3], &stamp)?;
        set(py, &obj, &f[4], &key)?;
        set(py, &obj, &f[5], &value)?;
        set(py, &obj, &f[6], headers.as_any())?;
        out.push(obj);
        position = o + 1;
        i += 1;
        if position >= end {
            break;
        }
    }
    Ok(Some((PyList::new(py, out)?, i)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(stored_run, m)?)?;
    Ok(())
}
