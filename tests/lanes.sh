#!/usr/bin/env bash
# `make test`: every pytest group, in three lanes that run side by side.
#
# Most of the suite's time is spent waiting on real components (a JVM starting, a Flink job, a
# broker electing a leader, an fsync), not on the CPU: one lane kept a core only a third busy. So
# three lanes run at once, each a list of groups (a group is one pytest process), each lane with
# its own infra slot: lanes b and c get their own state folders (.infra-lane-b, .infra-lane-c)
# and their own blocks of ports (infra/env.sh), so lanes never share a broker or stop each
# other's servers. Smaller pytest processes also keep chDB (in-process ClickHouse) far from the
# number of sessions after which it aborted a process. Output lines carry the lane's name; each
# group prints its 15 slowest tests, its exit code and its seconds. The exit code is the first
# failing group's (5, "no tests collected", fails; so does a group none of whose paths exist).
#
#   bash tests/lanes.sh                    the three lanes side by side (what `make test` runs)
#   HUB_TEST_LANES=1 bash tests/lanes.sh   every group one after the other, in one lane
#
# Lane b runs `make ci-deps-late` (the tools only tests/ops needs, built once and cached under
# ~/.cache/hub) before tests/ops under CI=true, so a cold build overlaps the other lanes' tests.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# A lane is a list of groups; a group is one pytest process (folders, files, globs, options).
# The Flink differential tests hold one chDB session for their whole process (their shared run),
# so the other differential tests run in a process of their own.
LANE_A=("tests/unit tests/contract" "tests/adversarial")
LANE_B=("tests/differential/test_flink_*.py" "tests/differential --ignore-glob=*/test_flink_*.py"
    "tests/ha" "@ci-deps-late" "tests/ops" "tests/browser")
LANE_C=("tests/service" "tests/integration")

run_group() {
    local lane=$1 group=$2 start rc
    start=$(date +%s)
    if [[ $group == @* ]]; then
        if [[ ${CI:-} != true ]]; then return 0; fi
        echo "[$lane] make ${group#@}"
        make --no-print-directory "${group#@}" 2>&1 | sed -u "s/^/[$lane] /"
        rc=${PIPESTATUS[0]}
    else
        local paths=() found=0
        for path in $group; do  # unquoted on purpose: globs expand, options pass through
            if [[ $path == -* ]]; then
                paths+=("$path")
            elif [[ -e $path ]]; then
                paths+=("$path")
                found=$((found + 1))
            fi
        done
        if ((found == 0)); then
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

if [[ ${HUB_TEST_LANES:-3} == 1 ]]; then
    run_lane a "${LANE_A[@]}" "${LANE_C[@]}" "${LANE_B[@]}"
    exit $?
fi

# Lanes b and c: their own slots (the checkout's slot + 50, + 25) and state folders; the ports
# and service URLs that lane a may have set explicitly are cleared so that theirs derive from
# their own slots.
slot=$(bash infra/env.sh | sed -n 's/^export HUB_INFRA_SLOT=//p')
clear=()
for name in $(bash infra/env.sh | sed -n 's/^export \(HUB_[A-Z_]*\)=.*/\1/p'); do
    [[ $name == HUB_INFRA_SLOT || $name == HUB_INFRA_DIR ]] || clear+=(-u "$name")
done

start=$(date +%s)
export PY
export -f run_group run_lane
run_lane a "${LANE_A[@]}" &
lane_a=$!
env "${clear[@]}" HUB_INFRA_SLOT=$(((slot + 50) % 100)) "HUB_INFRA_DIR=$PWD/.infra-lane-b" \
    bash -c 'run_lane b "$@"' lane-b "${LANE_B[@]}" &
lane_b=$!
env "${clear[@]}" HUB_INFRA_SLOT=$(((slot + 25) % 100)) "HUB_INFRA_DIR=$PWD/.infra-lane-c" \
    bash -c 'run_lane c "$@"' lane-c "${LANE_C[@]}" &
lane_c=$!
rc=0
for lane in "$lane_a" "$lane_b" "$lane_c"; do
    wait "$lane"
    r=$?
    ((rc == 0)) && rc=$r
done
echo "make test: every lane finished, exit $rc, $(($(date +%s) - start)) s in all"
exit "$rc"
