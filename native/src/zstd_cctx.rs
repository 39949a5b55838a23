//! One zstd compression context per thread, reused by every stored batch that thread seals
//! (`stored_batch::seal`). `ZSTD_compress` builds and frees a context (and its workspace) per
//! call: ~10 us of a 1-record decision batch's ~15 us native prepare (session 17 profile).
//! `ZSTD_compressCCtx` at a level is what `ZSTD_compress` runs on its own context (libzstd
//! 1.5.5, `ZSTD_compress` in zstd_compress.c): it resets the context's parameters to that
//! level, so the frames are byte for byte the same (tests/unit/test_native_prepare_columns.py
//! and the stored-batch tests compare with the Python reference).
use std::cell::RefCell;
use std::ptr::NonNull;

struct Ctx(NonNull<zstd_sys::ZSTD_CCtx>);

impl Drop for Ctx {
    fn drop(&mut self) {
        unsafe {
            zstd_sys::ZSTD_freeCCtx(self.0.as_ptr());
        }
    }
}

thread_local! {
    static CCTX: RefCell<Option<Ctx>> = const { RefCell::new(None) };
}

/// One frame of `src` at `level` into a buffer of `ZSTD_compressBound`, or `None` if libzstd
/// reports an error. `ctx` null: a one-shot `ZSTD_compress` (its own context).
unsafe fn frame(ctx: *mut zstd_sys::ZSTD_CCtx, src: &[u8], level: i32) -> Option<Vec<u8>> {
    let bound = zstd_sys::ZSTD_compressBound(src.len());
    let mut out: Vec<u8> = Vec::with_capacity(bound);
    let (dst, n) = (out.as_mut_ptr().cast(), src.len());
    let got = if ctx.is_null() {
        zstd_sys::ZSTD_compress(dst, bound, src.as_ptr().cast(), n, level)
    } else {
        zstd_sys::ZSTD_compressCCtx(ctx, dst, bound, src.as_ptr().cast(), n, level)
    };
    if zstd_sys::ZSTD_isError(got) != 0 {
        return None;
    }
    out.set_len(got);
    Some(out)
}

/// `ZSTD_compress(src, level)` on this thread's context. Without one (the thread is exiting,
/// or libzstd could not allocate it) the one-shot call: the same bytes either way.
pub(crate) fn compress(src: &[u8], level: i32) -> Option<Vec<u8>> {
    let reused = CCTX.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Some(Ctx(NonNull::new(unsafe { zstd_sys::ZSTD_createCCtx() })?));
        }
        let ctx = slot.as_ref()?.0.as_ptr();
        Some(unsafe { frame(ctx, src, level) })
    });
    match reused {
        Ok(Some(got)) => got,
        _ => unsafe { frame(std::ptr::null_mut(), src, level) },
    }
}
