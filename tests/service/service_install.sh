#!/usr/bin/env bash
# service_install.sh BUILD_DIR [CMAKE] [THRESHOLD]
#
# Installs BUILD_DIR into a temporary prefix, then checks what an operator
# gets (issue 13 item 5):
#   - PREFIX/lib/systemd/system/kvd.service runs PREFIX/bin/kvd with
#     --config PREFIX/etc/kvd/kvd.conf, and both are installed there;
#   - the unit is Type=notify, reloads with SIGHUP, has StateDirectory= and
#     LogsDirectory=, waits for network-online.target, and the sample
#     config's data-dir is the StateDirectory;
#   - a second install keeps an edited kvd.conf;
#   - the unit's ExecStart line starts kvd (with test overrides) and kvd
#     stops cleanly on SIGTERM;
#   - systemd-analyze verify accepts the unit, and systemd-analyze security
#     rates it below THRESHOLD (default 2.0; exit 77 = skipped if
#     systemd-analyze is not installed).
set -euo pipefail

BUILD_DIR=${1:?usage: service_install.sh BUILD_DIR [CMAKE] [THRESHOLD]}
CMAKE=${2:-cmake}
THRESHOLD=${3:-2.0}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvd-service.XXXXXX")
KVD_PID=
cleanup() {
    [ -n "$KVD_PID" ] && kill -KILL "$KVD_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
PREFIX=$WORK/prefix
UNIT=$PREFIX/lib/systemd/system/kvd.service
CONF=$PREFIX/etc/kvd/kvd.conf

step() { echo "--- $*"; }
fail() { echo "FAIL: $*"; exit 1; }

step "install $BUILD_DIR into $PREFIX"
"$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 || {
    cat "$WORK/install.log"
    fail "cmake --install"
}
[ -f "$UNIT" ] || fail "no unit at $UNIT"
[ -f "$CONF" ] || fail "no config at $CONF"
[ -x "$PREFIX/bin/kvd" ] || fail "no kvd in $PREFIX/bin"

step "the unit runs the installed kvd with the installed config"
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
[ "$EXEC" = "$PREFIX/bin/kvd --config $CONF" ] || fail "ExecStart=$EXEC"
for want in Type=notify 'ExecReload=/bin/kill -HUP $MAINPID' StateDirectory=kvd LogsDirectory=kvd \
    RuntimeDirectory=kvd After=network-online.target Wants=network-online.target DynamicUser=yes; do
    grep -qxF "$want" "$UNIT" || fail "the unit lacks $want"
done
DATA=$(sed -n 's/^data-dir *= *//p' "$CONF")
[ "$DATA" = /var/lib/kvd ] || fail "the sample's data-dir ($DATA) is not StateDirectory=kvd's /var/lib/kvd"

step "a reinstall keeps an edited config"
echo "# edited by the operator" >>"$CONF"
"$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install2.log" 2>&1 || {
    cat "$WORK/install2.log"
    fail "second cmake --install"
}
grep -q "edited by the operator" "$CONF" || fail "the second install overwrote $CONF"
grep -q "Keeping: $CONF" "$WORK/install2.log" || fail "the install does not say it kept $CONF"

step "the unit's ExecStart line starts kvd"
# the unit's directories do not exist here: a test data-dir and port
# shellcheck disable=SC2086 # EXEC is a command line
$EXEC --data-dir "$WORK/data" --port 0 --port-file "$WORK/port" 2>"$WORK/kvd.log" &
KVD_PID=$!
for _ in $(seq 1 400); do
    [ -s "$WORK/port" ] && break
    kill -0 "$KVD_PID" 2>/dev/null || { cat "$WORK/kvd.log"; fail "kvd exited at start"; }
    sleep 0.05
done
[ -s "$WORK/port" ] || { cat "$WORK/kvd.log"; fail "kvd did not start listening"; }
kill -TERM "$KVD_PID"
rc=0
wait "$KVD_PID" || rc=$?
KVD_PID=
[ "$rc" -eq 0 ] || { cat "$WORK/kvd.log"; fail "kvd exited $rc after SIGTERM"; }
grep -q "data in $WORK/data" "$WORK/kvd.log" || { cat "$WORK/kvd.log"; fail "kvd did not use data-dir"; }

if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze not found (Debian package systemd): the unit's verify and"
    echo "      security score were not checked"
    exit 77
fi

step "systemd-analyze verify"
# verify runs `man kvd(8)` for Documentation=: look in the install
MAN=--man=yes
command -v man >/dev/null || MAN=--man=no
if ! MANPATH=$PREFIX/share/man systemd-analyze verify "$MAN" "$UNIT" >"$WORK/verify.log" 2>&1; then
    cat "$WORK/verify.log"
    fail "systemd-analyze verify $UNIT"
fi
cat "$WORK/verify.log"

step "systemd-analyze security --offline=true"
systemd-analyze security --offline=true "$UNIT" >"$WORK/security.log" 2>&1 || true
SCORE=$(sed -n 's/.*Overall exposure level for kvd.service: \([0-9.]*\).*/\1/p' "$WORK/security.log")
[ -n "$SCORE" ] || { cat "$WORK/security.log"; fail "no exposure level from systemd-analyze security"; }
echo "exposure level $SCORE (threshold $THRESHOLD; the unshielded unit scored 7.7)"
if ! awk -v s="$SCORE" -v t="$THRESHOLD" 'BEGIN { exit !(s < t) }'; then
    grep '✗' "$WORK/security.log" || true
    fail "kvd.service's exposure level $SCORE is not below $THRESHOLD"
fi
echo "service: all ok"
