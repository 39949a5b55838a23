//! One text column as a dictionary (`Dict`) and the resource text of a record key
//! (`key_text`): shared by the ledger batch builders (`ledger_batch.rs`, `stored_leaves.rs`)
//! and the key index (`key_index.rs`), which is why they live apart from each of them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A string column's Arrow buffers: int32 offsets, UTF-8 data, validity bitmap (None: no null).
pub(crate) type ArrowBuffers<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Option<Bound<'py, PyBytes>>,
);

/// A hasher for object addresses (already unique; one multiply spreads them).
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_right(17);
    }
}

/// One text column as a dictionary: the distinct strings and, per record, an index into them
/// (`-1`: null), little-endian int32.
#[derive(Default)]
pub(crate) struct Dict {
    pub(crate) values: Vec<String>,
    pub(crate) index: Vec<u8>,
    /// by the address of the Python object: the log hands repeated header values as one
    /// object; each object keyed is held in `keep` for the call, so no address is reused
    by_addr: HashMap<usize, i32, BuildHasherDefault<AddrHasher>>,
    keep: Vec<PyObject>,
    seen: HashMap<Vec<u8>, i32>,
    /// the same bytes may give another text from another source (a key vs a subject)
    seen_alt: HashMap<Vec<u8>, i32>,
}

impl Dict {
    pub(crate) fn null(&mut self) {
        self.index.extend_from_slice(&(-1i32).to_le_bytes());
    }

    pub(crate) fn push_idx(&mut self, i: i32) {
        self.index.extend_from_slice(&i.to_le_bytes());
    }

    /// The index of `raw` (decoded by `text` when not seen before in this call), without
    /// pushing it: for bytes that are no Python object (`stored_leaves.rs`).
    pub(crate) fn index_raw(
        &mut self,
        raw: &[u8],
        alt: bool,
        text: impl FnOnce() -> PyResult<String>,
    ) -> PyResult<i32> {
        let map = if alt {
            &mut self.seen_alt
        } else {
            &mut self.seen
        };
        if let Some(&i) = map.get(raw) {
            return Ok(i);
        }
        let i = self.values.len() as i32;
        self.values.push(text()?);
        map.insert(raw.to_vec(), i);
        Ok(i)
    }

    /// The column itself as Arrow's string buffers, made straight into Python bytes: int32
    /// offsets, UTF-8 data and the validity bitmap (least significant bit first; None when no
    /// row is null). None when the data would pass Arrow's int32 offsets (the caller decodes
    /// the dictionary instead).
    ///
    /// Why this shape (perf, `stored_leaf_batch` of 200k leaves): the row-by-row copy into
    /// Rust vectors, then into Python bytes, made ~40 MB of fresh pages per call and page
    /// faults were ~13% of the call. Here the sizes are counted first and every buffer is
    /// written once, in place; rows come in runs of one index (a constant header, the batch's
    /// topic), and a run's bytes are its value repeated, copied by doubling.
    pub(crate) fn arrow_py<'py>(&self, py: Python<'py>) -> PyResult<Option<ArrowBuffers<'py>>> {
        let at = |r: usize| {
            let b = &self.index[4 * r..4 * r + 4];
            i32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let n = self.index.len() / 4;
        let mut total = 0usize;
        let mut nulls = false;
        for r in 0..n {
            let ix = at(r);
            if ix < 0 {
                nulls = true;
            } else {
                match self.values.get(ix as usize) {
                    Some(v) => total += v.len(),
                    None => return Ok(None),
                }
            }
        }
        if i32::try_from(total).is_err() {
            return Ok(None);
        }
        let offsets = PyBytes::new_with(py, 4 * (n + 1), |o| {
            let mut end = 0usize;
            for r in 0..n {
                let ix = at(r);
                if ix >= 0 {
                    end += self.values[ix as usize].len();
                }
                o[4 * (r + 1)..4 * (r + 2)].copy_from_slice(&(end as i32).to_le_bytes());
            }
            Ok(())
        })?;
        let data = PyBytes::new_with(py, total, |d| {
            let (mut row, mut pos) = (0usize, 0usize);
            while row < n {
                let ix = at(row);
                let mut end = row + 1;
                while end < n && at(end) == ix {
                    end += 1;
                }
                if ix >= 0 {
                    let v = self.values[ix as usize].as_bytes();
                    let want = pos + v.len() * (end - row);
                    d[pos..pos + v.len()].copy_from_slice(v);
                    let mut have = pos + v.len();
                    while have < want {
                        let more = (have - pos).min(want - have);
                        d.copy_within(pos..pos + more, have);
                        have += more;
                    }
                    pos = want;
                }
                row = end;
            }
            Ok(())
        })?;
        let validity = if nulls {
            Some(PyBytes::new_with(py, n.div_ceil(8), |v| {
                for r in 0..n {
                    if at(r) >= 0 {
                        v[r / 8] |= 1 << (r % 8);
                    }
                }
                Ok(())
            })?)
        } else {
            None
        };
        Ok(Some((offsets, data, validity)))
    }

    /// `raw` decoded by `text` (called only for a value not seen before in this batch).
    pub(crate) fn put(
        &mut self,
        obj: &Bound<'_, PyAny>,
        raw: &[u8],
        alt: bool,
        text: impl FnOnce() -> PyResult<String>,
    ) -> PyResult<()> {
        let key = (obj.as_ptr() as usize) ^ usize::from(alt); // aligned: the low bit is free
        if let Some(&i) = self.by_addr.get(&key) {
            self.push_idx(i);
            return Ok(());
        }
        let map = if alt {
            &mut self.seen_alt
        } else {
            &mut self.seen
        };
        let i = match map.get(raw) {
            Some(&i) => i,
            None => {
                let i = self.values.len() as i32;
                self.values.push(text()?);
                map.insert(raw.to_vec(), i);
                i
            }
        };
        self.by_addr.insert(key, i);
        self.keep.push(obj.clone().unbind());
        self.push_idx(i);
        Ok(())
    }
}

/// The resource text of a key (no `ce_subject`): the key as UTF-8, else `0x` and its hex.
pub(crate) fn key_text(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut s = String::with_capacity(2 + 2 * k.len());
            s.push_str("0x");
            for b in k {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}
