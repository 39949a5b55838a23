//! One text column as a dictionary (`Dict`) and the resource text of a record key
//! (`key_text`): shared by the ledger batch builders (`ledger_batch.rs`, `stored_leaves.rs`)
//! and the key index (`key_index.rs`), which is why they live apart from each of them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;

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

    /// The column itself as Arrow's string buffers: int32 offsets, UTF-8 data and the
    /// validity bitmap (least significant bit first; None when no row is null). None when the
    /// data would pass Arrow's int32 offsets (the caller decodes the dictionary instead).
    pub(crate) fn arrow(&self) -> Option<(Vec<u8>, Vec<u8>, Option<Vec<u8>>)> {
        let n = self.index.len() / 4;
        let mut offsets = Vec::with_capacity(4 * (n + 1));
        let mut data: Vec<u8> = Vec::new();
        let mut validity = vec![0u8; n.div_ceil(8)];
        let mut nulls = false;
        offsets.extend_from_slice(&0i32.to_le_bytes());
        for (row, ix) in self.index.chunks_exact(4).enumerate() {
            let ix = i32::from_le_bytes([ix[0], ix[1], ix[2], ix[3]]);
            if ix < 0 {
                nulls = true;
            } else {
                data.extend_from_slice(self.values.get(ix as usize)?.as_bytes());
                validity[row / 8] |= 1 << (row % 8);
            }
            offsets.extend_from_slice(&i32::try_from(data.len()).ok()?.to_le_bytes());
        }
        Some((offsets, data, nulls.then_some(validity)))
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
