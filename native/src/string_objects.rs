//! An Arrow string or binary column's values as Python `bytes`, each after a prefix
//! (`ingest/columnar.py`, `ArrowPlan.header_values`: the natural-key header's values), None for
//! a null row, read straight from the column's buffers into a new list. The reference,
//! pyarrow's `binary_join_element_wise` of the prefix and the column, cast to binary,
//! `to_numpy(zero_copy_only=False).tolist()`, builds a joined column and an object array first;
//! `tests/unit/test_native_string_objects.py` checks both agree.
use crate::csv_rows::Strings;
use pyo3::buffer::PyBuffer;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

/// `prefix` + the bytes of rows `offset..offset + n` of a column with int32 `offsets`, `data`
/// and the `valid` bitmap (None: no null), None for a null row.
#[pyfunction]
#[pyo3(signature = (offsets, data, valid, offset, n, prefix))]
fn prefixed_bytes<'py>(
    py: Python<'py>,
    offsets: PyBuffer<i8>,
    data: Option<PyBuffer<i8>>,
    valid: Option<PyBuffer<i8>>,
    offset: usize,
    n: usize,
    prefix: &[u8],
) -> PyResult<Bound<'py, PyList>> {
    let col = Strings::of("prefixed_bytes", &offsets, data.as_ref(), valid.as_ref())?;
    col.covers(offset, n)?;
    let len = ffi::Py_ssize_t::try_from(n)?;
    // SAFETY: PyList_New answers a new list of `n` empty slots or null with an exception set;
    // every slot is filled below (PyList_SetItem steals the item's reference) before the list
    // is handed out, and on an error the list is dropped with the slots set so far.
    let list = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len))? }
        .downcast_into::<PyList>()?;
    for (i, j) in (offset..offset + n).enumerate() {
        let item = match col.get(j).map_err(|()| col.outside())? {
            None => py.None().into_bound(py),
            Some(b) => bytes_after(py, prefix, b)?,
        };
        // SAFETY: `i` < `n`, the list's length; the item's reference moves into the list.
        if unsafe { ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr()) } != 0
        {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(list)
}

/// `prefix` + `b` as a new `bytes`, filled once (`PyBytes::new_with` zeroes it first).
fn bytes_after<'py>(py: Python<'py>, prefix: &[u8], b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let len = ffi::Py_ssize_t::try_from(prefix.len() + b.len())?;
    // SAFETY: a null source asks for an uninitialised bytes object of `len` bytes (or null with
    // an exception set); all `len` bytes are written through its buffer before it is shared.
    unsafe {
        let made = Bound::from_owned_ptr_or_err(
            py,
            ffi::PyBytes_FromStringAndSize(std::ptr::null(), len),
        )?;
        let out = ffi::PyBytes_AsString(made.as_ptr()) as *mut u8;
        std::ptr::copy_nonoverlapping(prefix.as_ptr(), out, prefix.len());
        std::ptr::copy_nonoverlapping(b.as_ptr(), out.add(prefix.len()), b.len());
        Ok(made)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(prefixed_bytes, m)?)
}
