#!/usr/bin/env bash
# A private PostgreSQL server for the tests.
#
#   scripts/pg-test-server.sh run CMD [ARGS...]
#
# With PGSTORE_TEST_URL set, runs CMD against that server and nothing else.
# Otherwise: installs Debian's `postgresql` when initdb is missing (as
# browser-test.sh does with chromium), runs `initdb` as an unprivileged user
# (`postgres`, created when absent, when we are root) in a fresh temp dir,
# starts the server listening on a unix socket in that dir (and on TCP for
# TLS only, below),
# exports PGSTORE_TEST_URL as a libpq key=value conninfo, runs CMD, and stops
# the server and removes the dir on every exit path. Exits with CMD's status.
#
# Also exported for tests that restart the server (fault tests):
# PGSTORE_TEST_PGCTL, a command line that takes pg_ctl's arguments, e.g.
# `$PGSTORE_TEST_PGCTL restart -m immediate` (split on spaces).
#
# The same server also listens on a free localhost TCP port for TLS only
# (pg_hba.conf: hostssl, nothing else over TCP), with a CA and a server
# certificate (for localhost and 127.0.0.1) made by openssl at start:
# PGSTORE_TEST_TLS_URL (key=value, no sslmode), PGSTORE_TEST_TLS_CA (the CA
# that signed the server's certificate) and PGSTORE_TEST_TLS_OTHER_CA (one
# that did not) are exported for the TLS tests.
#
# fsync is off: a crash of the server process still loses nothing (the WAL is
# in the OS cache); only the machine's crash would, and the server is thrown
# away at exit anyway. PGSTORE_SERVER_FSYNC=on keeps fsync on, as a
# production server has it (the benchmark runs that way, so the PostgreSQL
# systems' "power loss" label holds).
set -euo pipefail

usage() {
    echo "usage: $0 run CMD [ARGS...]" >&2
    exit 2
}
[[ $# -ge 2 && $1 == run ]] || usage
shift

if [[ -n ${PGSTORE_TEST_URL:-} ]]; then
    echo "pg-test-server: using PGSTORE_TEST_URL from the environment" >&2
    exec "$@"
fi

log() { echo "pg-test-server: $*" >&2; }

bindir() {
    # The newest installed major version.
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] && echo "$d"
}

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
fi

if ! bin=$(bindir); then
    log "installing Debian's postgresql package"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(bindir) || {
        log "postgresql was installed but no initdb found under /usr/lib/postgresql"
        exit 1
    }
fi

# initdb refuses to run as root: run the server as `postgres` then.
as_user=()
if [[ $(id -u) -eq 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
        log "creating the unprivileged user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
    fi
    as_user=(runuser -u postgres --)
fi

# Short path: a unix socket path must fit in 107 bytes.
dir=$(mktemp -d /tmp/pgstore.XXXXXX)
if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$dir"
fi
chmod 700 "$dir"

child=
stop_server() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -s $dir/server.log ]]; then
        log "exit status $status; the server's log ends:"
        tail -n 30 "$dir/server.log" >&2 || true
    fi
    if [[ -f $dir/data/postmaster.pid ]]; then
        "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    exit "$status"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

"${as_user[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale \
    --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
}

# TLS: Debian's postgresql pulls in openssl (through ssl-cert); install it
# when it is missing all the same.
if ! command -v openssl >/dev/null 2>&1; then
    log "installing openssl"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
tls=$dir/tls
mkdir "$tls"
make_ca() { # NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=pgstore test $1" -keyout "$tls/$1.key" -out "$tls/$1.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        >"$tls/openssl.log" 2>&1
}
{
    make_ca ca && make_ca other-ca &&
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj "/CN=localhost" -keyout "$tls/server.key" -out "$tls/server.csr" &&
        printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
            'extendedKeyUsage=serverAuth' 'subjectAltName=DNS:localhost,IP:127.0.0.1' >"$tls/server.ext" &&
        openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
            -CAcreateserial -days 2 -extfile "$tls/server.ext" -out "$tls/server.crt"
} >>"$tls/openssl.log" 2>&1 || {
    cat "$tls/openssl.log" >&2
    exit 1
}
cp "$tls/server.crt" "$tls/server.key" "$dir/data/"
chmod 600 "$dir/data/server.key"
if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$dir/data/server.crt" "$dir/data/server.key"
    chmod 755 "$tls"
    chmod 644 "$tls"/*.crt
fi
# Unix socket: anything. TCP: TLS only.
printf '%s\n' 'local all all trust' 'hostssl all all 127.0.0.1/32 trust' >"$dir/data/pg_hba.conf"
port=
for _ in 1 2 3 4 5 6 7 8 9 10; do
    candidate=$((20000 + RANDOM % 40000))
    if ! (: </dev/tcp/127.0.0.1/$candidate) 2>/dev/null; then
        port=$candidate
        break
    fi
done
[[ -n $port ]] || {
    log "no free localhost port found"
    exit 1
}
fsync=${PGSTORE_SERVER_FSYNC:-off}
case $fsync in
on | off) ;;
*)
    echo "pg-test-server: PGSTORE_SERVER_FSYNC must be on or off, not '$fsync'" >&2
    exit 2
    ;;
esac
opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir' -c fsync=$fsync"
opts+=" -c ssl=on"
opts+=" -c max_connections=300 -c shared_buffers=64MB"
if ! "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null; then
    cat "$dir/server.log" >&2 || true
    exit 1
fi

export PGSTORE_TEST_URL="host=$dir port=$port user=postgres dbname=postgres"
export PGSTORE_TEST_TLS_URL="host=localhost port=$port user=postgres dbname=postgres"
export PGSTORE_TEST_TLS_CA=$tls/ca.crt
export PGSTORE_TEST_TLS_OTHER_CA=$tls/other-ca.crt
export PGSTORE_TEST_PGCTL="${as_user[*]} $bin/pg_ctl -D $dir/data -l $dir/server.log -w -t 60"
log "server up ($("$bin/postgres" --version)), PGSTORE_TEST_URL='$PGSTORE_TEST_URL'"

# In the background, so a signal to this script runs the trap at once.
"$@" &
child=$!
set +e
wait "$child"
status=$?
set -e
child=
exit "$status"
