#!/usr/bin/env bash
# The whole suite in three phases, all always run:
#   js:     the web client's unit tests, Node's own runner (node --test tests/js/)
#   host:   pytest -m "not webrtc" on the host network (real PostgreSQL and Redis over TCP)
#   webrtc: pytest -m webrtc inside a network namespace that has only `lo` (scripts/in-netns.sh)
# Usage: scripts/test.sh [all|js|host|webrtc]; extra pytest options in PYTEST_ARGS.
# Exit status: non-zero when any phase fails (pytest's "no tests collected", 5, is a failure).
# Last line of output: `tests: N passed, M failed[, K skipped]` over the phases that ran.
set -euo pipefail
cd "$(dirname "$0")/.."

which_phases=${1:-all}
case "$which_phases" in all | js | host | webrtc) ;; *) echo "usage: $0 [all|js|host|webrtc]" >&2; exit 2 ;; esac

PYTEST=.venv/bin/pytest
PYTHON=.venv/bin/python
ARTIFACTS=test-artifacts
# A safety net so CI never hangs (phases of at most 15 minutes each; the host phase takes about
# 5 on a quiet machine); per-test limits come from pytest-timeout (tests/conftest.py).
PHASE_TIMEOUT=${TELECONSULT_TEST_PHASE_TIMEOUT:-900}
read -r -a extra_args <<<"${PYTEST_ARGS:-}"

# The suite's processes (the server under test, its Chromium and aiortc clients) run ahead of
# whatever else loads the machine, as a media server does on a host of its own: its tests then
# show what the server does, not how much CPU other jobs left it. They assert behaviour, never
# speed (figures live in bench/). Raising priority needs root; otherwise they run as they are.
priority=()
if [ "$(id -u)" = 0 ]; then
    priority=(nice -n -10)
fi

TSC=node_modules/.bin/tsc

[ -x "$PYTEST" ] || { echo "test.sh: $PYTEST is missing; run make install" >&2; exit 1; }

# The house rules are checked first: ruff's lint and format, mypy (strict on the domain packages
# and the media core, pyproject.toml), and tsc on the web client's JSDoc types (a failure fails
# the run).
if [ "$which_phases" = all ]; then
    echo "=== lint: ruff check, ruff format --check, mypy, tsc" >&2
    .venv/bin/ruff check --quiet . || { echo "test.sh: ruff check failed" >&2; exit 1; }
    .venv/bin/ruff format --check --quiet . || { echo "test.sh: ruff format found unformatted files" >&2; exit 1; }
    .venv/bin/mypy || { echo "test.sh: mypy found type errors" >&2; exit 1; }
    [ -x "$TSC" ] || { echo "test.sh: $TSC is missing; run make install" >&2; exit 1; }
    "$TSC" -p tsconfig.json || { echo "test.sh: tsc found type errors in web_client/static" >&2; exit 1; }
    "$TSC" -p tests/js/tsconfig.json || { echo "test.sh: tsc found type errors in tests/js" >&2; exit 1; }
fi

if [ "$which_phases" != js ]; then
    scripts/ensure-services.sh
fi
if [ "$which_phases" = all ] || [ "$which_phases" = webrtc ]; then
    scripts/ensure-chromium.sh
    scripts/ensure-nftables.sh
    scripts/ensure-coturn.sh
fi

rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"

junit_files=()
status=0
started=$SECONDS

run_phase() {  # run_phase NAME COMMAND...
    local name=$1 rc=0 t0=$SECONDS
    shift
    echo "=== phase $name: $*" >&2
    timeout --kill-after=30 "$PHASE_TIMEOUT" ${priority[@]+"${priority[@]}"} "$@" </dev/null || rc=$?
    junit_files+=("$ARTIFACTS/junit-$name.xml:$rc")
    if [ "$rc" -ne 0 ]; then
        status=1
        case $rc in
        5) echo "=== phase $name: FAILED: no tests were collected" >&2 ;;
        124 | 137) echo "=== phase $name: FAILED: killed after ${PHASE_TIMEOUT}s" >&2 ;;
        *) echo "=== phase $name: FAILED (exit $rc)" >&2 ;;
        esac
    fi
    echo "=== phase $name: exit $rc in $((SECONDS - t0))s" >&2
}

common=(-o junit_family=xunit2 -rfE)

if [ "$which_phases" = all ] || [ "$which_phases" = js ]; then
    # Readable results on stdout, JUnit XML for the summary line.
    run_phase js node --test \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=junit --test-reporter-destination="$ARTIFACTS/junit-js.xml" \
        tests/js/
fi
# The host phase runs on two pytest-xdist workers (one per core of the machine CI uses; each
# test has its own database and Redis keys); TELECONSULT_TEST_HOST_WORKERS=0 runs it serially.
host_workers=${TELECONSULT_TEST_HOST_WORKERS:-2}
host_parallel=()
if [ "$host_workers" -gt 0 ]; then
    host_parallel=(-n "$host_workers" --dist worksteal)
fi
if [ "$which_phases" = all ] || [ "$which_phases" = host ]; then
    run_phase host "$PYTEST" -m "not webrtc" "${common[@]}" ${host_parallel[@]+"${host_parallel[@]}"} \
        --junitxml="$ARTIFACTS/junit-host.xml" ${extra_args[@]+"${extra_args[@]}"}
fi
if [ "$which_phases" = all ] || [ "$which_phases" = webrtc ]; then
    run_phase webrtc scripts/in-netns.sh "$PYTEST" -m webrtc "${common[@]}" \
        --junitxml="$ARTIFACTS/junit-webrtc.xml" ${extra_args[@]+"${extra_args[@]}"}
fi

echo "=== all phases: $((SECONDS - started))s, exit $status" >&2
"$PYTHON" scripts/junit_summary.py "${junit_files[@]}"
exit "$status"
