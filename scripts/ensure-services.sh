#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and Redis (127.0.0.1:6379)
# answer; start them when they are installed but down. Fails with a clear message otherwise.
set -euo pipefail

PG_USER=${TELECONSULT_TEST_PG_USER:-postgres}

log() { echo "ensure-services: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die "$what did not answer within ${seconds}s ($*)"
        fi
        sleep 0.2
    done
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }

ensure_postgres() {
    command -v pg_isready >/dev/null || die "PostgreSQL is not installed (no pg_isready); install postgresql"
    if ! pg_up; then
        command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ] ||
            die "PostgreSQL is not running on 127.0.0.1:5432 and no cluster is installed (/etc/postgresql)"
        log "starting PostgreSQL"
        # shellcheck disable=SC2046
        pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
        wait_for 60 "PostgreSQL" pg_up
    fi
    psql -h 127.0.0.1 -U "$PG_USER" -d postgres -Atqc 'select 1' >/dev/null 2>&1 ||
        die "PostgreSQL answers but role '$PG_USER' cannot log in over TCP without a password (trust auth expected)"
    if [ "$(psql -h 127.0.0.1 -U "$PG_USER" -d postgres -Atqc "select 1 from pg_database where datname = 'test'")" != 1 ]; then
        log "creating database test"
        psql -h 127.0.0.1 -U "$PG_USER" -d postgres -qc 'CREATE DATABASE test' >/dev/null
    fi
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
    command -v redis-cli >/dev/null || die "Redis is not installed (no redis-cli); install redis-server"
    if ! redis_up; then
        command -v redis-server >/dev/null ||
            die "Redis is not running on 127.0.0.1:6379 and redis-server is not installed"
        log "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
        wait_for 30 "Redis" redis_up
    fi
}

ensure_postgres
ensure_redis
log "PostgreSQL and Redis are up"
