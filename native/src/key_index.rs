//! The record key's two uses in a ledger batch from one SHA-256: its digest in the leaf input
//! and its index in the side index's resource dictionary (a record without `ce_subject`).
//!
//! Profiled (py-spy --native, `Ledger.sync` of 100k records, 5,000 distinct 32-byte keys):
//! a per-call cache `key bytes -> digest` and the dictionary's `key bytes -> index` map took
//! 15% of the sync between them, against ~2% for hashing a 32-byte key with SHA-NI (one
//! block). Both were std `HashMap`s (SipHash over the key, then a compare of the key bytes
//! behind a pointer). Here the key is always hashed, and the dictionary is found by that
//! digest: the map's hash is the digest's first 8 bytes (no second hash function), its
//! equality the whole digest. Keys come from producers, so anyone may choose them; bucket
//! placement from a SHA-256 prefix cannot be steered cheaply (many keys in one bucket need
//! multi-collisions of the prefix), unlike an unkeyed fast hash. Two keys with the same
//! digest would share a dictionary entry, but they would also give the same leaf input (the
//! leaf holds the key's digest, never the key): the ledger relies on SHA-256 collision
//! resistance for both.
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use sha2::{Digest, Sha256};

use crate::dict_column::{key_text, Dict};

/// The hash of a map key that already is a SHA-256 digest: its first 8 bytes.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // the digest's 32 bytes arrive in one write
        if let Some(head) = bytes.get(..8) {
            self.0 = u64::from_le_bytes(head.try_into().unwrap_or_default());
        }
    }
    fn write_usize(&mut self, _: usize) {} // the length prefix: always 32
}

/// Per call: key digest -> index in the resource dictionary.
#[derive(Default)]
pub(crate) struct KeyIndex {
    by_digest: HashMap<[u8; 32], i32, BuildHasherDefault<PrefixHasher>>,
}

impl KeyIndex {
    /// Appends the key's leaf-input field (`0x00` for none, `0x01 || SHA-256(key)`) to `buf`;
    /// returns the digest.
    pub(crate) fn digest(key: Option<&[u8]>, buf: &mut Vec<u8>) -> Option<[u8; 32]> {
        match key {
            None => {
                buf.push(0x00);
                None
            }
            Some(k) => {
                let d: [u8; 32] = Sha256::digest(k).into();
                buf.push(0x01);
                buf.extend_from_slice(&d);
                Some(d)
            }
        }
    }

    /// Pushes the resource of a record whose resource is its key (`key_text`; null for no key)
    /// into `d`, found by the key's `digest` (from [`KeyIndex::digest`]).
    pub(crate) fn push_resource(
        &mut self,
        d: &mut Dict,
        key: Option<&[u8]>,
        digest: Option<[u8; 32]>,
    ) -> PyResult<()> {
        let (Some(k), Some(digest)) = (key, digest) else {
            d.null();
            return Ok(());
        };
        if let Some(&i) = self.by_digest.get(&digest) {
            d.push_idx(i);
            return Ok(());
        }
        // first time in this call: the dictionary's own lookup (its order of first appearance)
        let i = d.index_raw(k, true, || Ok(key_text(k)))?;
        self.by_digest.insert(digest, i);
        d.push_idx(i);
        Ok(())
    }
}
