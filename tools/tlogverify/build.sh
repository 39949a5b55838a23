#!/usr/bin/env bash
# Builds hub-tlogverify (a tlog-tiles client on golang.org/x/mod/sumdb) into ~/.cache/hub/bin.
# Modules come from the Go module proxy (go.sum pins them). Settings: GO (default go on PATH,
# else /usr/local/go/bin/go), HUB_TOOLS_BIN (default ~/.cache/hub/bin).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_bin="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
out="${HUB_TOOLS_BIN:-$HOME/.cache/hub/bin}"
mkdir -p "$out"
cd "$here"
GOFLAGS=-mod=mod "$go_bin" build -trimpath -o "$out/hub-tlogverify" .
echo "$out/hub-tlogverify"
