#!/usr/bin/env bash
# Builds the hub_native extension (Rust, PyO3) and installs it into the given Python's
# site-packages as hub_native.abi3.so. Used by `make setup`. The build directory is cached outside
# the repo (~/.cache/hub/native-target), shared by every checkout for speed: build and copy hold
# an exclusive flock on it, so a parallel `make setup` of another checkout cannot build its own
# sources into it between this build and this copy (which would install the other checkout's
# library here). Without flock the target is per checkout (a hash of its path under it). Without
# cargo the hub runs on its pure-Python reference paths (same bytes, slower); under CI=true a
# missing toolchain is an error.
set -euo pipefail
PY=${1:?usage: native/build.sh PYTHON}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
cd "$(dirname "$0")"
# rustup installs into ~/.cargo/bin, which a non-login shell (CI) may not have on its PATH
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then PATH=$HOME/.cargo/bin:$PATH; fi
if ! command -v cargo >/dev/null; then
	if [ "${CI:-}" = true ]; then
		echo "native/build.sh: cargo is not installed; CI needs it to build hub_native." >&2
		exit 1
	fi
	echo "native/build.sh: cargo not found; hub_native not built (the pure-Python paths are used)." >&2
	exit 0
fi
CARGO_TARGET_DIR=${HUB_NATIVE_TARGET:-$HOME/.cache/hub/native-target}
dest=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
if command -v flock >/dev/null; then
	mkdir -p "$CARGO_TARGET_DIR"
	exec 9>"$CARGO_TARGET_DIR/.hub-build.lock"
	flock 9 # released when this script exits
else
	CARGO_TARGET_DIR=$CARGO_TARGET_DIR/$(pwd | sha256sum | cut -c1-16)
fi
export CARGO_TARGET_DIR
# The shared target's release/libhub_native.so is the LAST checkout's build: when this checkout's
# crate looks fresh to cargo (built before, unchanged since), cargo copies nothing there and the
# copy below would install another checkout's library. Touching the crate root makes cargo
# rebuild (and copy out) this checkout's crate every time; the dependencies stay cached.
touch src/lib.rs
cargo build --release --quiet --locked 2>/dev/null || cargo build --release --quiet
cp "$CARGO_TARGET_DIR/release/libhub_native.so" "$dest/hub_native.abi3.so.tmp"
mv "$dest/hub_native.abi3.so.tmp" "$dest/hub_native.abi3.so"
exec 9>&- # the copy is in place: another checkout may build now
"$PY" -c 'import hub_native; print("hub_native built:", hub_native.__file__)'
