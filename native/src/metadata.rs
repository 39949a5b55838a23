//! Frozen dataclass instances of a whole batch built in one call, without the dataclass's Python
//! `__init__` (from Python, a frozen dataclass's `__init__` calls `object.__setattr__` once per
//! field: for `RecordMetadata` and `Record` that cost as much as librdkafka's produce).
//!
//! `frozen_rows(cls, names, columns)` is the general form (used for the Kafka log's `Record`s and
//! `RecordMetadata`s); `batch_metadata` is the acknowledged record batch's metadata list. The
//! pure-Python references are `core.ports.eventlog_rows.frozen_rows_py` and
//! `adapters.kafka_log.batch._metadata_py`; `tests/unit/test_native_metadata.py` checks both
//! give equal lists on random batches.
//!
//! Each instance is made by `cls`'s own allocator (what `object.__new__(cls)` does) and each
//! field set by `object.__setattr__` (the member descriptor of its slot), exactly as the
//! dataclass's `__init__` does. Returns `None` for anything but the plain case: the reference
//! then runs.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList, PyString, PyTuple, PyType};

/// A new, empty instance of `cls` (its slots unset), as `object.__new__(cls)` makes it.
pub(crate) fn alloc<'py>(py: Python<'py>, cls: &Bound<'py, PyType>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: tp_alloc of a heap type is PyType_GenericAlloc (or its override); NULL is an error
    unsafe {
        let t = cls.as_ptr() as *mut ffi::PyTypeObject;
        let slot = ffi::PyType_GetSlot(t, ffi::Py_tp_alloc);
        if slot.is_null() {
            return Err(PyErr::fetch(py));
        }
        let a: ffi::allocfunc = std::mem::transmute(slot);
        let o = a(t, 0);
        if o.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, o))
    }
}

pub(crate) fn set(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: all three are live objects held by the caller
    let rc = unsafe { ffi::PyObject_GenericSetAttr(obj.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if rc != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// Whether `cls` is a plain class whose instances `alloc` may make: `object.__new__` is its
/// `__new__` and `object.__init__` is not what builds it (a dataclass's generated `__init__`).
pub(crate) fn plain_class(cls: &Bound<'_, PyType>) -> bool {
    // SAFETY: reading a type object's slots
    unsafe {
        let t = cls.as_ptr() as *mut ffi::PyTypeObject;
        let base = std::ptr::addr_of_mut!(ffi::PyBaseObject_Type);
        let new = ffi::PyType_GetSlot(t, ffi::Py_tp_new);
        !new.is_null()
            && new == ffi::PyType_GetSlot(base, ffi::Py_tp_new)
            && !ffi::PyType_GetSlot(t, ffi::Py_tp_alloc).is_null()
    }
}

/// `[cls(**{names[j]: col_j[i] for j}) for i in range(n)]` where a column that is a list gives
/// row i its item i (every list column MUST have n items, n the length of the first one; no list
/// column: `None`), and any other column gives every row the same object.
#[pyfunction]
fn frozen_rows<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyType>,
    names: &Bound<'py, PyTuple>,
    columns: &Bound<'py, PyTuple>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    if names.len() != columns.len() || !plain_class(cls) {
        return Ok(None);
    }
    let mut keys = Vec::with_capacity(names.len());
    for n in names.iter() {
        let Ok(s) = n.downcast_into::<PyString>() else {
            return Ok(None);
        };
        keys.push(s);
    }
    let cols: Vec<Bound<'py, PyAny>> = columns.iter().collect();
    let mut rows: Option<usize> = None;
    for c in &cols {
        if let Ok(l) = c.downcast::<PyList>() {
            match rows {
                None => rows = Some(l.len()),
                Some(r) if r != l.len() => return Ok(None),
                _ => {}
            }
        }
    }
    let Some(n) = rows else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let obj = alloc(py, cls)?;
        for (name, c) in keys.iter().zip(&cols) {
            match c.downcast::<PyList>() {
                Ok(l) => set(py, &obj, name, &l.get_item(i)?)?,
                Err(_) => set(py, &obj, name, c)?,
            }
        }
        out.push(obj);
    }
    Ok(Some(PyList::new(py, out)?))
}

/// `[cls(topic, partition, first + i, stamps[i] if a list else stamps) for i in range(n)]`.
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
    if !plain_class(cls) {
        return Ok(None);
    }
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
    let names = [
        PyString::intern(py, "topic"),
        PyString::intern(py, "partition"),
        PyString::intern(py, "offset"),
        PyString::intern(py, "timestamp_ms"),
    ];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let obj = alloc(py, cls)?;
        let offset = (first + i as i64).into_pyobject(py)?.into_any();
        let stamp = match list {
            Some(l) => l.get_item(i)?,
            None => stamps.clone(),
        };
        set(py, &obj, &names[0], topic.as_any())?;
        set(py, &obj, &names[1], partition.as_any())?;
        set(py, &obj, &names[2], &offset)?;
        set(py, &obj, &names[3], &stamp)?;
        out.push(obj);
    }
    Ok(Some(PyList::new(py, out)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(batch_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(frozen_rows, m)?)?;
    Ok(())
}
