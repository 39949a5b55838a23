//! The `RecordMetadata` list of one acknowledged Kafka record batch (`adapters/kafka_log/batch.py`,
//! `BatchDelivery.metadata`): n frozen dataclass instances at consecutive offsets, built without
//! the dataclass's Python `__init__` (four `object.__setattr__` calls per record from Python cost
//! as much as librdkafka's produce). The pure-Python reference is `batch._metadata_py`;
//! `tests/unit/test_native_metadata.py` checks both give equal lists on random batches.
//!
//! Returns `None` for anything but the plain case (a timestamp list whose length is not n, an
//! item that is not an int): the reference then runs.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList, PyString, PyType};

/// `[cls(topic, partition, first + i, stamps[i] if a list else stamps) for i in range(n)]`,
/// each instance made by `object.__new__(cls)` and its four fields set by
/// `object.__setattr__`, as the frozen dataclass's own `__init__` does.
#[pyfunction]
fn batch_metadata<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyType>,
    topic: &Bound<'py, PyString>,
    partition: &Bound<'py, PyInt>,
    first: i64,
    n: usize,
    stamps: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let list = stamps.downcast::<PyList>().ok();
    if let Some(l) = list {
        if l.len() != n {
            return Ok(None);
        }
        for s in l.iter() {
            if !s.is_exact_instance_of::<PyInt>() {
                return Ok(None);
            }
        }
    } else if !stamps.is_exact_instance_of::<PyInt>() {
        return Ok(None);
    }
    let new = py.import("builtins")?.getattr("object")?.getattr("__new__")?;
    let names = [
        PyString::intern(py, "topic"),
        PyString::intern(py, "partition"),
        PyString::intern(py, "offset"),
        PyString::intern(py, "timestamp_ms"),
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let obj = new.call1((cls,))?;
        let offset = (first + i as i64).into_pyobject(py)?.into_any();
        let stamp = match list {
            Some(l) => l.get_item(i)?,
            None => stamps.clone(),
        };
        let values = [topic.as_any(), partition.as_any(), &offset, &stamp];
        for (name, value) in names.iter().zip(values) {
            // SAFETY: all three are live objects held by this frame
            let rc = unsafe {
                ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value.as_ptr())
            };
            if rc != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        out.push(obj);
    }
    Ok(Some(PyList::new(py, out)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(batch_metadata, m)?)?;
    Ok(())
}
