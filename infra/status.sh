#!/usr/bin/env bash
# `make infra-status`: this checkout's state folder and port block, then each component's status.
#
#   infra/status.sh          one line per component script (every infra/*.sh with a `status`
#                            command): up or down, and what its script says; exit 0 always
#
# Components are found by looking, so a new infra/<name>.sh with a `status)` case is listed
# without editing this file.
set -euo pipefail

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/env.sh
source "$INFRA/env.sh"

printf 'state folder: %s\n' "$HUB_INFRA_DIR"
printf 'port block:   slot %s (set HUB_INFRA_SLOT or HUB_*_PORT to change; eval "$(bash infra/env.sh)" exports them)\n\n' \
    "$HUB_INFRA_SLOT"
bash "$INFRA/env.sh" --table
printf '\n'
for script in "$INFRA"/*.sh; do
    name="$(basename "$script" .sh)"
    case "$name" in env | lib | status | tools) continue ;; esac
    grep -q '^status)' "$script" || continue
    if said="$(bash "$script" status 2>&1)"; then
        state="up"
    else
        state="down"
    fi
    printf '%-12s %-5s %s\n' "$name" "$state" "$(printf '%s' "$said" | tail -n 1)"
done
