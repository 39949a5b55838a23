//! Replay's decode straight from the embedded log's stored batch bodies: the Avro values of
//! records `start..stop` of each batch decoded column-wise (`avro_columns::decode_parts`) and
//! their `ce_tenant` / `ce_type` header columns as dictionary indexes, with no Python object per
//! record (values and header values are slices of the inflated bodies).
//!
//! The pure-Python reference is the column path the projection runner takes otherwise:
//! `EncodedColumns.columns()` (the adapter's decoder) into `projections.columnar.decode_values`
//! and `envelope_of_columns`; `tests/unit/test_stored_avro_columns.py` checks both give equal
//! Arrow columns on random batches. Anything unusual (a section running past the body, the pair
//! header layout, an envelope header twice, a null value, a value without the wire-format
//! prefix, no plan for the schema) returns None and the caller takes that reference path, which
//! makes every decision (poison events, quarantine).
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::avro_columns::decode_parts;
use crate::ledger_batch::repeats_envelope;
use crate::stored_leaves::{
    bytes_section, header_columns, take, HAS_HEADERS, HEADER_COLUMNS, KEYS_MIXED, KEYS_NULL,
    TS_UNIFORM, TS_WIDE, VALUES_MIXED, VALUES_NULL,
};

/// Distinct header values in first-seen order (None: the header is absent) and each record's
/// index into them (u32 little-endian).
struct Distinct<'a> {
    index: HashMap<Option<&'a [u8]>, u32>,
    order: Vec<Option<&'a [u8]>>,
    per_record: Vec<u8>,
}

impl<'a> Distinct<'a> {
    fn new(n: usize) -> Self {
        Distinct {
            index: HashMap::new(),
            order: Vec::new(),
            per_record: Vec::with_capacity(4 * n),
        }
    }

    fn push(&mut self, v: Option<&'a [u8]>) {
        let next = self.order.len() as u32;
        let i = *self.index.entry(v).or_insert(next);
        if i == next {
            self.order.push(v);
        }
        self.per_record.extend_from_slice(&i.to_le_bytes());
    }

    /// The same value for `k` records (a constant column, or an absent header).
    fn push_many(&mut self, v: Option<&'a [u8]>, k: usize) {
        let next = self.order.len() as u32;
        let i = *self.index.entry(v).or_insert(next);
        if i == next {
            self.order.push(v);
        }
        let word = i.to_le_bytes();
        for _ in 0..k {
            self.per_record.extend_from_slice(&word);
        }
    }

    fn into_py<'py>(self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>)> {
        let items: Vec<PyObject> = self
            .order
            .iter()
            .map(|v| match v {
                Some(b) => PyBytes::new(py, b).into_any().unbind(),
                None => py.None(),
            })
            .collect();
        Ok((PyBytes::new(py, &self.per_record), PyList::new(py, items)?))
    }
}

/// One stored batch's record values `start..stop` (pushed to `parts`) and their tenant and type
/// header values (pushed to `tenants`, `types`). None when anything is unusual.
#[allow(clippy::too_many_arguments)]
fn piece<'a>(
    body: &'a [u8],
    mut pos: usize,
    start: usize,
    stop: usize,
    n: usize,
    flags: u8,
    layout: u8,
    parts: &mut Vec<&'a [u8]>,
    tenants: &mut Distinct<'a>,
    types: &mut Distinct<'a>,
) -> Option<()> {
    if start > stop || stop > n {
        return None;
    }
    // 1. the sections in their stored order: timestamps (skipped), keys (skipped), values
    if flags & TS_UNIFORM == 0 {
        let width = if flags & TS_WIDE != 0 { 8 } else { 4 };
        take(body, &mut pos, n.checked_mul(width)?)?;
    }
    bytes_section(body, &mut pos, n, flags, KEYS_NULL, KEYS_MIXED)?;
    let values = bytes_section(body, &mut pos, n, flags, VALUES_NULL, VALUES_MIXED)?;
    for v in &values[start..stop] {
        parts.push((*v)?); // a null value: the reference decides
    }
    // 2. the envelope's tenant and type columns (absent: None for every record)
    let k = stop - start;
    if flags & HAS_HEADERS == 0 {
        tenants.push_many(None, k);
        types.push_many(None, k);
        return Some(());
    }
    if layout != HEADER_COLUMNS {
        return None; // the pair layout: the reference decodes it
    }
    let cols = header_columns(body, &mut pos, n)?;
    if repeats_envelope(cols.iter().map(|c| c.name)) {
        return None; // the reference quarantines such records
    }
    for (name, out) in [("ce_tenant", tenants), ("ce_type", types)] {
        match cols.iter().find(|c| c.name == name) {
            None => out.push_many(None, k),
            Some(c) => match c.constant {
                Some(v) => out.push_many(Some(v), k),
                None => {
                    for i in start..stop {
                        out.push(Some(c.value(i)));
                    }
                }
            },
        }
    }
    Some(())
}

/// Records `start..stop` of stored batches, decoded for the analytics folds. `pieces`: per
/// batch `(start, stop, record count, flags, header layout, body, where the sections start)`
/// (`core.ports.eventlog.EncodedBatch`); `plan_of(schema id)` gives the field plan of
/// `avro_columns` (or None). Returns None when the caller must take the reference path, else
/// `(schema id, avro_columns' result for that id, tenant index per record (u32 bytes), distinct
/// tenant values, type index per record, distinct type values)`, distinct values as bytes or
/// None (header absent) in first-seen order.
#[pyfunction]
fn stored_avro_columns<'py>(
    py: Python<'py>,
    pieces: &Bound<'py, PyList>,
    plan_of: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let mut heads: Vec<(usize, usize, usize, u8, u8, usize)> = Vec::with_capacity(pieces.len());
    let mut bodies: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(pieces.len());
    let mut total = 0usize;
    for p in pieces.iter() {
        let Ok(p) = p.downcast::<PyTuple>() else {
            return Ok(None);
        };
        if p.len() != 7 {
            return Ok(None);
        }
        let Ok((start, stop, count, flags, layout)) =
            p.get_slice(0, 5).extract::<(usize, usize, usize, u8, u8)>()
        else {
            return Ok(None);
        };
        let Ok(body) = p.get_item(5)?.downcast_into::<PyBytes>() else {
            return Ok(None);
        };
        let Ok(pos) = p.get_item(6)?.extract::<usize>() else {
            return Ok(None);
        };
        total = total.saturating_add(stop.saturating_sub(start));
        heads.push((start, stop, count, flags, layout, pos));
        bodies.push(body);
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(total);
    let mut tenants = Distinct::new(total);
    let mut types = Distinct::new(total);
    for (&(start, stop, n, flags, layout, pos), body) in heads.iter().zip(bodies.iter()) {
        let got = piece(
            body.as_bytes(),
            pos,
            start,
            stop,
            n,
            flags,
            layout,
            &mut parts,
            &mut tenants,
            &mut types,
        );
        if got.is_none() {
            return Ok(None);
        }
    }
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    if first.len() < 5 || first[0] != 0 {
        return Ok(None); // the reference names the problem
    }
    let sid = u32::from_be_bytes([first[1], first[2], first[3], first[4]]);
    let plan = plan_of.call1((sid,))?;
    if plan.is_none() {
        return Ok(None);
    }
    let Ok(fields) = plan.extract::<Vec<(u8, i64, i64)>>() else {
        return Ok(None);
    };
    let decoded = decode_parts(py, &parts, sid, &fields)?;
    let (tenant_idx, tenant_values) = tenants.into_py(py)?;
    let (type_idx, type_values) = types.into_py(py)?;
    Ok(Some(PyTuple::new(
        py,
        [
            sid.into_pyobject(py)?.into_any(),
            decoded.into_bound(py),
            tenant_idx.into_any(),
            tenant_values.into_any(),
            type_idx.into_any(),
            type_values.into_any(),
        ],
    )?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(stored_avro_columns, m)?)?;
    Ok(())
}
