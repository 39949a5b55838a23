#!/usr/bin/env bash
# `make test`: every pytest group, in two lanes that run side by side.
#
# Most of the suite's time is spent waiting on real components (a JVM starting, a Flink job, a
# broker electing a leader), not on the CPU, so two lanes on two cores take about half the time of
# one. Each lane is its own pytest process with its own infra slot: lane b gets its own state
# folder (.infra-lane-b) and its own block of ports (infra/env.sh), so the two lanes never share a
# broker or stop each other's servers. Output lines carry the lane's name; each group prints its
# 15 slowest tests. The exit code is the first failing group's (5, "no tests collected", fails).
#
#   bash tests/lanes.sh              both lanes side by side (what `make test` runs)
#   HUB_TEST_LANES=1 bash tests/lanes.sh   every group one after the other, in one lane
#
# Lane b runs `make ci-deps-late` (the tools only tests/ops needs, built once and cached under
# ~/.cache/hub) before tests/ops under CI=true, so a cold build overlaps lane a's tests.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

LANE_A=("tests/unit tests/contract tests/service tests/integration")
LANE_B=("tests/differential tests/ha" "tests/adversarial" "@ci-deps-late" "tests/ops" "tests/browser")

run_group() {
    local lane=$1 group=$2 start rc
    start=$(date +%s)
    if [[ $group == @* ]]; then
        if [[ ${CI:-} != true ]]; then return 0; fi
        echo "[$lane] make ${group#@}"
        make --no-print-directory "${group#@}" 2>&1 | sed -u "s/^/[$lane] /"
        rc=${PIPESTATUS[0]}
    else
        local paths=()
        for path in $group; do [[ -e $path ]] && paths+=("$path"); done
        if ((${#paths[@]} == 0)); then
            echo "[$lane] make test: none of $group exists; that is a failure" >&2
            return 4
        fi
        echo "[$lane] pytest ${paths[*]}"
        # shellcheck disable=SC2086  # the group is a list of folders
        "$PY" -m pytest -q --durations=15 "${paths[@]}" 2>&1 | sed -u "s/^/[$lane] /"
        rc=${PIPESTATUS[0]}
        if ((rc == 5)); then
            echo "[$lane] make test: pytest collected no tests in $group; that is a failure" >&2
        fi
    fi
    echo "[$lane] finished $group: exit $rc after $(($(date +%s) - start)) s"
    return "$rc"
}

run_lane() {
    local lane=$1 rc=0 group
    shift
    for group in "$@"; do
        run_group "$lane" "$group" || { r=$?; ((rc == 0)) && rc=$r; }
    done
    return "$rc"
}

if [[ ${HUB_TEST_LANES:-2} == 1 ]]; then
    run_lane a "${LANE_A[@]}" "${LANE_B[@]}"
    exit $?
fi

# Lane b: its own slot (the checkout's slot + 50) and state folder; the ports and service URLs
# that lane a may have set explicitly are cleared so that lane b's derive from its own slot.
slot=$(bash infra/env.sh | sed -n 's/^export HUB_INFRA_SLOT=//p')
lane_b_env=(HUB_INFRA_SLOT=$(((slot + 50) % 100)) "HUB_INFRA_DIR=$PWD/.infra-lane-b")
for name in $(bash infra/env.sh | sed -n 's/^export \(HUB_[A-Z_]*\)=.*/\1/p'); do
    [[ $name == HUB_INFRA_SLOT || $name == HUB_INFRA_DIR ]] || lane_b_env=(-u "$name" "${lane_b_env[@]}")
done

start=$(date +%s)
run_lane a "${LANE_A[@]}" &
lane_a=$!
export PY
export -f run_group run_lane
env "${lane_b_env[@]}" bash -c 'run_lane b "$@"' lane-b "${LANE_B[@]}" &
lane_b=$!
wait "$lane_a"
rc_a=$?
wait "$lane_b"
rc_b=$?
echo "make test: lane a exit $rc_a, lane b exit $rc_b, $(($(date +%s) - start)) s in all"
((rc_a != 0)) && exit "$rc_a"
exit "$rc_b"
