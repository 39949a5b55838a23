#!/usr/bin/env bash
# `make test`: every pytest group, in two lanes that run side by side.
#
# Most of the suite's time is spent waiting on real components (a JVM starting, a Flink job, a
# broker electing a leader, an fsync), not on the CPU: one lane kept a core only a third busy. So
# two lanes run at once (three were slower: the CPU-bound groups then starved each other), each a
# list of groups (a group is one pytest process), each lane with its own infra slot: lane b gets
# its own state folder (.infra-lane-b) and its own block of ports (infra/env.sh), so lanes never
# share a broker or stop each other's servers. Smaller pytest processes also keep chDB (in-process ClickHouse) far from the
# number of sessions after which it aborted a process. Output lines carry the lane's name; each
# group prints its 15 slowest tests, its exit code and its seconds. The exit code is the first
# failing group's (5, "no tests collected", fails; so does a group none of whose paths exist).
#
#   bash tests/lanes.sh                    the two lanes side by side (what `make test` runs)
#   HUB_TEST_LANES=1 bash tests/lanes.sh   every group one after the other, in one lane
#
# Each group's exit code, seconds and the load average are also appended to
# ~/.cache/hub/test-timings.log (HUB_TEST_TIMINGS), with the seconds `make` spent before the lanes
# started (setup, ci-deps): a run's output is not always kept, and the suite's time is a budget.
#
# Every group's full output is kept in ~/.cache/hub/test-logs/<run>/ (HUB_TEST_LOGS; the newest
# eight runs), and when a group fails the run ends with a short digest of it (the failed tests,
# the first lines of a fatal error's traceback, the log's path): a CI result is often read from
# its last lines only, and a crash (SIGABRT) leaves no pytest summary at all.
#
# Lane b runs `make ci-deps-late` (the tools only tests/ops needs, built once and cached under
# ~/.cache/hub) before tests/ops under CI=true, so a cold build overlaps the other lanes' tests.
#
# Two settings of the test processes, both about the machine, not the hub:
# - Bytecode is written (PYTHONDONTWRITEBYTECODE unset): the suite starts hundreds of Python
#   processes (served hubs, CLI calls, Airflow, PyFlink); without .pyc files each one compiles
#   pyarrow, pandas, scikit-learn... again (measured: 10-11 s of CPU per hub import, 4.5 s with).
# - Under eatmydata (Debian's package; `make ci-deps` installs it) fsync returns at once. The
#   tests kill processes (kill -9), they never cut the power: what a killed process had written
#   is in the page cache either way, so every crash test proves the same. The disk's flush time is
#   measured by the benchmarks, not by the tests. HUB_TEST_FSYNC=1 runs the tests with real fsync.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
unset PYTHONDONTWRITEBYTECODE
if [[ ${HUB_TEST_FSYNC:-} != 1 ]] && command -v eatmydata >/dev/null; then
    PY_RUN="eatmydata $PY"
else
    PY_RUN=$PY
fi

# A lane is a list of groups; a group is one pytest process (folders, files, globs, options).
# The Flink differential tests hold one chDB session for their whole process (their shared run),
# so the other differential tests run in a process of their own.
# tests/service is split across the lanes by one glob (the same glob includes in one group and
# ignores in the other, so a new file lands in exactly one): lane a took 1,483 s and lane b 1,288 s
# in the CI run of 2026-12-03 09:01 with the whole of tests/service (773 s) in lane a; its
# projection tests (chDB steps, crash-and-restart subprocesses, ~100 s) run at the end of lane b.
SERVICE_B="tests/service/test_projections*.py"
# Schemathesis and the browser tests moved to lane a after the clean-clone trial of
# 2026-12-03 19:18 (lane a 1,078 s, lane b 1,376 s): ~165 s from b to a.
# tests/adversarial is split the same way, by ADVERSARIAL_A: the files of sessions 20 on
# (test_s20_*, test_s21_*, ...; 431 of its 2,647 tests) run in lane a, the rest in lane b. In the
# CI run of 2026-12-06 03:14 lane a took 1,105 s and lane b 1,724 s with the whole adversarial
# group (1,140 s) in lane b; sessions 20 and 21's files are an estimated 190-300 s of it
# (docs/benchmarks/s22-ci-time22.md): lane a ~1,320-1,430 s, lane b ~1,425-1,535 s (lane a
# also starts its own broker for them). New adversarial files are named
# test_s<session>_*, so this group grows each session: when lane a becomes the longer, raise its
# lower bound (test_s2[1-9]_*.py).
# Raised in session 26 (docs/benchmarks/s26-ci26.md): the CI run of 2026-12-06 15:32 took lane a
# 1,950 s (this group 873 s of it, sessions 20-25) and lane b 1,473 s; sessions 20 and 21 (an
# estimated ~190-290 s) moved to lane b, where tests/adversarial's other files run, and session
# 26's new files (~60-150 s) land here. Files of session 30 on (test_s3*) run in lane b until
# this glob names them.
ADVERSARIAL_A="tests/adversarial/test_s2[2-9]_*.py"
LANE_A=("tests/unit tests/contract" "tests/service --ignore-glob=*/${SERVICE_B##*/}" "tests/integration"
    "tests/adversarial/test_schemathesis.py" "$ADVERSARIAL_A" "tests/browser")
LANE_B=("tests/differential/test_flink_*.py" "tests/differential --ignore-glob=*/test_flink_*.py"
    "tests/ha"
    "tests/adversarial --ignore=tests/adversarial/test_schemathesis.py --ignore-glob=*/${ADVERSARIAL_A##*/}"
    "@ci-deps-late" "tests/ops" "$SERVICE_B")

TIMINGS=${HUB_TEST_TIMINGS:-$HOME/.cache/hub/test-timings.log}
mkdir -p "$(dirname "$TIMINGS")" 2>/dev/null || true
RUN_ID="$(date -u +%Y-%m-%dT%H:%M:%SZ) ci=${CI:-false} $PWD"
LOGS_ROOT=${HUB_TEST_LOGS:-$HOME/.cache/hub/test-logs}
LOGS="$LOGS_ROOT/$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$LOGS" 2>/dev/null || LOGS=$(mktemp -d)
# shellcheck disable=SC2012  # names are ours: <UTC time>-<pid>
ls -1d "$LOGS_ROOT"/*/ 2>/dev/null | sort | head -n -8 | xargs -r rm -rf
export TIMINGS RUN_ID LOGS

timing() {  # one line per finished group or run; never fails the run
    echo "$RUN_ID $* load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null | tr ' ' ,)" \
        >>"$TIMINGS" 2>/dev/null || true
}

run_group() {
    local lane=$1 group=$2 start rc log
    start=$(date +%s)
    log="$LOGS/$lane-$(echo "$group" | tr -c 'A-Za-z0-9_.-' '_' | cut -c1-80).log"
    if [[ $group == @* ]]; then
        if [[ ${CI:-} != true ]]; then return 0; fi
        echo "[$lane] make ${group#@}"
        make --no-print-directory "${group#@}" 2>&1 | tee "$log" | sed -u "s/^/[$lane] /"
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
        # shellcheck disable=SC2086  # PY_RUN is a command and its prefix
        $PY_RUN -m pytest -q -rfE --durations=15 "${paths[@]}" 2>&1 | tee "$log" |
            sed -u "s/^/[$lane] /"
        rc=${PIPESTATUS[0]}
        if ((rc == 5)); then
            echo "[$lane] make test: pytest collected no tests in $group; that is a failure" >&2
        fi
    fi
    echo "[$lane] finished $group: exit $rc after $(($(date +%s) - start)) s"
    timing "lane=$lane exit=$rc seconds=$(($(date +%s) - start)) group=$group"
    if ((rc != 0)); then
        echo "$lane|$group|$rc|$log" >>"$LOGS/failed"
    fi
    return "$rc"
}

digest() {  # the last lines of a failing run: what failed, and where its full output is
    [[ -s $LOGS/failed ]] || return 0
    local lane group rc log
    echo "make test: digest of the failed groups (full output under $LOGS)"
    while IFS='|' read -r lane group rc log; do
        echo "[$lane] FAILED GROUP $group: exit $rc; log $log"
        grep -E '^(FAILED|ERROR) ' "$log" | cut -c1-240 | head -8 | sed "s/^/[$lane]   /"
        # a crash: pytest printed no summary; faulthandler named the test's frames
        grep -A12 -m1 -E '^Fatal Python error' "$log" | grep -E 'Fatal|File "/' | grep -v site-packages |
            head -6 | cut -c1-240 | sed "s/^/[$lane]   /"
    done <"$LOGS/failed"
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
    run_lane a "${LANE_A[@]}" "${LANE_B[@]}"
    rc=$?
    digest
    exit $rc
fi

# Lane b: its own slot (the checkout's slot + 50) and state folder; the ports and service URLs
# that lane a may have set explicitly are cleared so that lane b's derive from its own slot.
slot=$(bash infra/env.sh | sed -n 's/^export HUB_INFRA_SLOT=//p')
clear=()
for name in $(bash infra/env.sh | sed -n 's/^export \(HUB_[A-Z_]*\)=.*/\1/p'); do
    [[ $name == HUB_INFRA_SLOT || $name == HUB_INFRA_DIR ]] || clear+=(-u "$name")
done

# The seconds `make test` spent before the lanes (make setup, make ci-deps under CI=true)
timing "before-lanes seconds=$(ps -o etimes= -p "$PPID" 2>/dev/null | tr -d ' ')"
start=$(date +%s)
export PY PY_RUN
export -f run_group run_lane timing
run_lane a "${LANE_A[@]}" &
lane_a=$!
env "${clear[@]}" HUB_INFRA_SLOT=$(((slot + 50) % 100)) "HUB_INFRA_DIR=$PWD/.infra-lane-b" \
    bash -c 'run_lane b "$@"' lane-b "${LANE_B[@]}" &
lane_b=$!
rc=0
for lane in "$lane_a" "$lane_b"; do
    wait "$lane"
    r=$?
    ((rc == 0)) && rc=$r
done
timing "lanes exit=$rc seconds=$(($(date +%s) - start))"
digest
echo "make test: both lanes finished, exit $rc, $(($(date +%s) - start)) s in all"
exit "$rc"
