//! One level of the ledger tree's parents (`core.hashing.parents`'s bytes: `SHA-256(0x01 ||
//! left || right)` per complete pair), for `ledger.tree.TreeBuilder`: written in place into
//! the returned bytes, hashed without the GIL, and split over up to `threads` threads for a
//! level of 4,096+ pairs per thread (each thread a contiguous range of the output, so the
//! bytes do not depend on the split). Reference: `core.hashing.parents_py`
//! (`tests/unit/test_ledger_tree_parents.py`).
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};

/// Below this many pairs per thread a level hashes on one thread (a spawn costs ~20-50 us).
const PER_THREAD_MIN: usize = 4096;

fn hash_pairs(nodes: &[u8], out: &mut [u8]) {
    let mut block = [0u8; 65];
    block[0] = 0x01;
    for (pair, slot) in nodes.chunks_exact(64).zip(out.chunks_exact_mut(32)) {
        block[1..].copy_from_slice(pair);
        slot.copy_from_slice(&Sha256::digest(block));
    }
}

#[pyfunction]
#[pyo3(signature = (nodes, threads = 1))]
fn tree_parents<'py>(
    py: Python<'py>,
    nodes: &Bound<'py, PyBytes>,
    threads: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let nodes = nodes.as_bytes(); // immutable bytes this call holds: safe without the GIL
    let pairs = nodes.len() / 64;
    let nodes = &nodes[..pairs * 64];
    let threads = threads.clamp(1, 8).min(pairs / PER_THREAD_MIN).max(1);
    PyBytes::new_with(py, pairs * 32, |out| {
        py.allow_threads(|| {
            if threads == 1 {
                return hash_pairs(nodes, out);
            }
            let per = pairs.div_ceil(threads);
            std::thread::scope(|s| {
                let mut parts = nodes.chunks(per * 64).zip(out.chunks_mut(per * 32));
                let mine = parts.next(); // this thread's share, hashed after the spawns
                for (n, o) in parts {
                    s.spawn(move || hash_pairs(n, o));
                }
                if let Some((n, o)) = mine {
                    hash_pairs(n, o);
                }
            });
        });
        Ok(())
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tree_parents, m)?)
}
