//! The produce loop of the Kafka log's column append (`adapters.kafka_log.log`
//! `KafkaEventLog._produce_columns`) in one call: per record, the header list confluent-kafka's
//! `Producer.produce` takes (the pairs of a shared column made once, the others per record) and
//! the call itself, with the same positional arguments as the Python loop
//! (`adapters.kafka_log.batch.produce_columns_py`, the reference; `tests/unit/
//! test_native_kafka_produce.py` checks both make the same calls). Each header list is freed as
//! soon as its record is produced, as in the reference, so nothing per record outlives the call.
//!
//! Returns `False`, having produced nothing, for anything but the plain case (a key, value or
//! header column that is not a list or tuple, or names that are not str): the reference then
//! runs. Columns of different lengths raise `ValueError` before the first record is produced.
//! An exception from `produce` (librdkafka's full queue: `BufferError`) propagates at once.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// A list or a tuple (what a `ColumnBatch` column is), read by index.
pub(crate) enum Seq<'py> {
    List(Bound<'py, PyList>),
    Tuple(Bound<'py, PyTuple>),
}

impl<'py> Seq<'py> {
    pub(crate) fn of(o: &Bound<'py, PyAny>) -> Option<Self> {
        if let Ok(l) = o.downcast_exact::<PyList>() {
            return Some(Seq::List(l.clone()));
        }
        if let Ok(t) = o.downcast_exact::<PyTuple>() {
            return Some(Seq::Tuple(t.clone()));
        }
        None
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Seq::List(l) => l.len(),
            Seq::Tuple(t) => t.len(),
        }
    }

    pub(crate) fn get(&self, i: usize) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Seq::List(l) => l.get_item(i),
            Seq::Tuple(t) => t.get_item(i),
        }
    }
}

/// One header column: the (name, value) pair every record shares, or a name and its values.
enum Column<'py> {
    Shared(Bound<'py, PyTuple>),
    PerRecord(Bound<'py, PyString>, Seq<'py>),
}

/// The checks both produce loops (this one and `kafka_produce_dict.rs`) make before their first
/// record: keys and values lists or tuples, header names and columns tuples, each pair of one
/// length. `None`: not the plain case (the caller returns `False`); a misaligned batch raises.
#[allow(clippy::type_complexity)]
pub(crate) fn batch_of<'py>(
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    header_names: &Bound<'py, PyAny>,
    header_columns: &Bound<'py, PyAny>,
) -> PyResult<Option<(Seq<'py>, Seq<'py>, Bound<'py, PyTuple>, Bound<'py, PyTuple>)>> {
    let (Some(keys), Some(values)) = (Seq::of(keys), Seq::of(values)) else {
        return Ok(None);
    };
    let (Ok(names), Ok(cols)) = (
        header_names.downcast_exact::<PyTuple>(),
        header_columns.downcast_exact::<PyTuple>(),
    ) else {
        return Ok(None);
    };
    let n = values.len();
    if keys.len() != n || names.len() != cols.len() {
        return Err(PyValueError::new_err(format!(
            "produce_columns: {} keys for {n} values, {} header names for {} header columns.",
            keys.len(),
            names.len(),
            cols.len()
        )));
    }
    Ok(Some((keys, values, names.clone(), cols.clone())))
}

/// A header column with a value per record, `n` of them (`None`: not a list or tuple).
pub(crate) fn per_record_column<'py>(
    col: &Bound<'py, PyAny>,
    n: usize,
) -> PyResult<Option<Seq<'py>>> {
    let Some(seq) = Seq::of(col) else {
        return Ok(None);
    };
    if seq.len() != n {
        return Err(PyValueError::new_err(format!(
            "produce_columns: a header column holds {} values, not {n}.",
            seq.len()
        )));
    }
    Ok(Some(seq))
}

/// What every `produce` call of one batch shares; `call` produces one record.
pub(crate) struct Producer<'a, 'py> {
    pub(crate) produce: &'a Bound<'py, PyAny>,
    pub(crate) topic: &'a Bound<'py, PyAny>,
    pub(crate) ts: &'a Bound<'py, PyAny>,
    pub(crate) on_first: &'a Bound<'py, PyAny>,
    pub(crate) on_last: &'a Bound<'py, PyAny>,
    pub(crate) n: usize,
}

impl<'py> Producer<'_, 'py> {
    /// Record `i`: (topic, value, key, partition, callback, on_delivery, timestamp, headers),
    /// confluent-kafka's order; a report for the first and the last record only (a passed
    /// callback=None would make it ignore on_delivery, so the report goes in `callback`). The
    /// args tuple is gone on return (the dict loop counts the references to its headers then).
    pub(crate) fn call(
        &self,
        i: usize,
        value: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = self.produce.py();
        let none = py.None().into_bound(py);
        let cb = if i == 0 {
            self.on_first // the caller's `on_first or on_last` when the batch is one record
        } else if i + 1 == self.n {
            self.on_last
        } else {
            &none
        };
        let zero = 0i64.into_pyobject(py)?.into_any();
        let args = PyTuple::new(
            py,
            [self.topic, value, key, &zero, cb, &none, self.ts, headers],
        )?;
        self.produce.call1(args)?;
        Ok(())
    }
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn produce_columns<'py>(
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
    let mut columns: Vec<Column<'py>> = Vec::with_capacity(cols.len());
    for (name, col) in names.iter().zip(cols.iter()) {
        let Ok(name) = name.downcast_exact::<PyString>() else {
            return Ok(false);
        };
        if col.downcast_exact::<PyBytes>().is_ok() {
            columns.push(Column::Shared(PyTuple::new(py, [name.as_any(), &col])?));
            continue;
        }
        let Some(seq) = per_record_column(&col, n)? else {
            return Ok(false);
        };
        columns.push(Column::PerRecord(name.clone(), seq));
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
        let headers = if columns.is_empty() {
            py.None().into_bound(py)
        } else {
            let mut row: Vec<Bound<'py, PyAny>> = Vec::with_capacity(columns.len());
            for c in &columns {
                row.push(match c {
                    Column::Shared(pair) => pair.clone().into_any(),
                    Column::PerRecord(name, seq) => {
                        PyTuple::new(py, [name.as_any(), &seq.get(i)?])?.into_any()
                    }
                });
            }
            PyList::new(py, row)?.into_any()
        };
        producer.call(i, &values.get(i)?, &keys.get(i)?, &headers)?;
    }
    Ok(true)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(produce_columns, m)?)
}
