#!/bin/bash
# sshd-selftest.sh -- manual self-check of tests/lib-sshd.sh (TAP output).
#   tests/sshd-selftest.sh            (as root; needs openssh-server/client)
# Exit 0 when every check passes, 1 otherwise, 77 (skip) without sshd/root.

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib-sshd.sh"

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root"; exit 77; }
[ -x /usr/sbin/sshd ] || { echo "1..0 # SKIP no /usr/sbin/sshd"; exit 77; }
command -v ssh >/dev/null || { echo "1..0 # SKIP no ssh"; exit 77; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sshd-selftest.XXXXXX") || exit 99
D1=$scratch/small
D2=$scratch/big
cleanup() {
    sshd_stop "$D1"
    sshd_stop "$D2"
    [ -n "${KEEP:-}" ] || rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0 fails=0
ok()     { n=$((n+1)); echo "ok $n - $*"; }
not_ok() { n=$((n+1)); fails=$((fails+1)); echo "not ok $n - $*"; }
check()  { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
ms()     { _sshd_now_ms; echo "$REPLY"; }

SSH() { local d=$1; shift; timeout 20 ssh -F "$d/ssh_config" "$@" </dev/null; }

# --- setup and 3 hosts -------------------------------------------------------
t=$(ms); sshd_setup "$D1"; rc=$?; t=$(( $(ms) - t ))
check "sshd_setup ($t ms)" [ "$rc" = 0 ]
for f in id_ed25519 id_ed25519_enc id_ecdsa id_rsa authorized_keys ssh_host_ed25519_key; do
    check "keys/$f exists" [ -s "$D1/keys/$f" ]
done
check "encrypted key needs the passphrase" \
    bash -c "! ssh-keygen -y -P '' -f '$D1/keys/id_ed25519_enc' >/dev/null 2>&1 &&
             ssh-keygen -y -P '${SSHD_TEST_PASSPHRASE:-test-pass}' -f '$D1/keys/id_ed25519_enc' >/dev/null"

sshd_start "$D1" 3; rc=$?
check "sshd_start 3 hosts ($(cat "$D1/start_ms" 2>/dev/null) ms, port $(sshd_port "$D1"))" [ "$rc" = 0 ]
[ "$rc" = 0 ] || { echo "Bail out! cannot start hosts"; exit 1; }
check "known_hosts lists [127.0.0.2]:port" \
    grep -q "^\[127.0.0.2\]:$(sshd_port "$D1") ssh-ed25519 " "$D1/known_hosts"
check "sshd_host_addr 1 = 127.0.0.2" [ "$(sshd_host_addr 1)" = 127.0.0.2 ]
check "sshd_host_addr 253 = 127.0.0.254" [ "$(sshd_host_addr 253)" = 127.0.0.254 ]
check "sshd_host_addr 254 = 127.0.1.1" [ "$(sshd_host_addr 254)" = 127.0.1.1 ]
check "sshd_host_addr 508 = 127.0.2.1" [ "$(sshd_host_addr 508)" = 127.0.2.1 ]

for i in 1 2 3; do
    out=$(SSH "$D1" "h$i" echo hi 2>"$scratch/err"); rc=$?
    check "ssh h$i echo hi -> '$out'" [ "$rc" = 0 -a "$out" = hi ]
    [ "$rc" = 0 ] || sed 's/^/# /' "$scratch/err"
done
check "accepted count on h1 is 1" [ "$(sshd_accepted "$D1" 1)" = 1 ]

# every key type logs in; the encrypted key via SSH_ASKPASS
for k in id_ecdsa id_rsa; do
    out=$(SSH "$D1" -i "$D1/keys/$k" h1 echo "$k" 2>&1)
    check "login with $k" [ "$out" = "$k" ]
done
askpass=$scratch/askpass
printf '#!/bin/sh\necho "%s"\n' "${SSHD_TEST_PASSPHRASE:-test-pass}" > "$askpass"
chmod 700 "$askpass"
out=$(SSH_ASKPASS=$askpass SSH_ASKPASS_REQUIRE=force DISPLAY=none \
      timeout 20 ssh -F "$D1/ssh_config" -o BatchMode=no \
      -i "$D1/keys/id_ed25519_enc" h1 echo enc </dev/null 2>&1)
check "login with encrypted key" [ "$out" = enc ]

# remote environment: fast shell (no ~/.bashrc), user root
out=$(SSH "$D1" h1 'echo "$(id -un) $SHLVL"' 2>&1)
check "remote shell: root, ~/.bashrc skipped (got '$out')" [ "$out" = "root 2" ]
t=$(ms)
for r in 1 2 3 4 5 6 7 8 9 10; do SSH "$D1" h2 true || break; done
t=$(( $(ms) - t ))
check "10 x 'ssh h2 true' sequential: $t ms ($(( t / 10 )) ms each)" [ "$r" = 10 ]

# --- pause / resume ----------------------------------------------------------
sshd_pause_host "$D1" 2
t=$(ms)
SSH "$D1" -o ConnectTimeout=2 h2 true 2>"$scratch/err"; rc=$?
t=$(( $(ms) - t ))
check "paused h2: ssh fails after ConnectTimeout ($t ms, rc $rc)" [ "$rc" != 0 ]
sed 's/^/# /' "$scratch/err"
check "h1 still fine while h2 is paused" SSH "$D1" h1 true
sshd_resume_host "$D1" 2
out=$(SSH "$D1" h2 echo back 2>&1)
check "resumed h2 answers" [ "$out" = back ]

# --- rekey -------------------------------------------------------------------
oldpid=$(sshd_host_pid "$D1" 3)
sshd_rekey_host "$D1" 3; rc=$?
check "sshd_rekey_host 3 (pid $oldpid -> $(sshd_host_pid "$D1" 3))" [ "$rc" = 0 ]
SSH "$D1" h3 true 2>"$scratch/err"; rc=$?
check "ssh to rekeyed h3 fails" [ "$rc" = 255 ]
check "... with a host key error" grep -q 'REMOTE HOST IDENTIFICATION HAS CHANGED' "$scratch/err"
check "h1 unaffected" SSH "$D1" h1 true

# --- stop one host -----------------------------------------------------------
pid1=$(sshd_host_pid "$D1" 1)
sshd_stop_host "$D1" 1
check "sshd_stop_host 1: pid $pid1 gone" _sshd_gone "$pid1"
SSH "$D1" h1 true 2>/dev/null; rc=$?
check "ssh to stopped h1 fails" [ "$rc" = 255 ]
check "h2 unaffected" SSH "$D1" h2 true

# --- stop with a paused host and a live session ------------------------------
SSH "$D1" h2 sleep 60 2>/dev/null & sess=$!
for w in $(seq 1 100); do
    [ "$(_sshd_tree "$(sshd_host_pid "$D1" 2)" | wc -l)" -ge 3 ] && break; sleep 0.05
done
sshd_pause_host "$D1" 2
mapfile -t procs < <(_sshd_tree "$(sshd_host_pid "$D1" 2)")
t=$(ms); sshd_stop "$D1"; t=$(( $(ms) - t ))
left=0; for p in "${procs[@]}"; do
    _sshd_gone "$p" || left=$((left+1))
done
check "sshd_stop with paused host + session (${#procs[@]} procs): $t ms, $left left" [ "$left" = 0 ]
wait "$sess" 2>/dev/null
check "sshd_stop twice is harmless" sshd_stop "$D1"

# --- 100 hosts ---------------------------------------------------------------
sshd_setup "$D2" >/dev/null
t=$(ms); sshd_start "$D2" 100; rc=$?; t=$(( $(ms) - t ))
check "sshd_start 100 hosts: $t ms (port $(sshd_port "$D2"))" [ "$rc" = 0 ]
running=0
for i in $(seq 1 100); do
    p=$(sshd_host_pid "$D2" "$i") && [ -e "/proc/$p" ] && running=$((running+1))
done
check "100 listeners running" [ "$running" = 100 ]
ours=0
for i in $(seq 1 100); do
    p=$(sshd_host_pid "$D2" "$i") || continue
    pp=$(awk '/^PPid:/{print $2}' "/proc/$p/status" 2>/dev/null)
    [ "$pp" = "$$" ] && ours=$((ours+1))
done
check "no sshd is a child of the test shell (bare wait cannot hang)" [ "$ours" = 0 ]
check "ssh_config has h100" grep -q '^Host h100$' "$D2/ssh_config"
out=$(SSH "$D2" h100 echo hundred 2>&1)
check "ssh h100 (127.0.0.101) works" [ "$out" = hundred ]
# 100 concurrent ssh, one per host
t=$(ms)
for i in $(seq 1 100); do SSH "$D2" "h$i" true & done
bad=0; for j in $(jobs -p); do wait "$j" || bad=$((bad+1)); done
t=$(( $(ms) - t ))
check "100 concurrent 'ssh hN true': $t ms, $bad failed" [ "$bad" = 0 ]
# 50 concurrent sessions to one host (MaxStartups)
t=$(ms)
for i in $(seq 1 50); do SSH "$D2" h7 true & done
bad=0; for j in $(jobs -p); do wait "$j" || bad=$((bad+1)); done
t=$(( $(ms) - t ))
check "50 concurrent 'ssh h7 true': $t ms, $bad failed" [ "$bad" = 0 ]
check "h7 accepted 51" [ "$(sshd_accepted "$D2" 7)" = 51 ]

t=$(ms); sshd_stop "$D2"; t=$(( $(ms) - t ))
check "sshd_stop 100 hosts: $t ms" true

# --- EXIT trap under set -eu, and two scripts at once ------------------------
child() {   # child DIR N: a miniature test script in its own bash
    bash -c 'set -eu -o pipefail
        . "$1"
        trap "sshd_stop \"$2\"" EXIT
        sshd_setup "$2"
        sshd_start "$2" "$3"
        p=$(sshd_port "$2")
        out=$(ssh -F "$2/ssh_config" "h$3" echo "up:$p" </dev/null)
        echo "$out"
        exit 3' child "$here/lib-sshd.sh" "$1" "$2"
}
child "$scratch/p1" 20 > "$scratch/p1.out" 2>&1 & c1=$!
child "$scratch/p2" 20 > "$scratch/p2.out" 2>&1 & c2=$!
wait "$c1"; r1=$?; wait "$c2"; r2=$?
o1=$(cat "$scratch/p1.out"); o2=$(cat "$scratch/p2.out")
check "two concurrent scripts (set -eu, exit 3 via EXIT trap): rc $r1/$r2, '$o1' '$o2'" \
    [ "$r1" = 3 -a "$r2" = 3 -a "${o1%%:*}" = up -a "${o2%%:*}" = up -a "$o1" != "$o2" ]
left=$(pgrep -f "$scratch/p[12]/" | wc -l)
check "their EXIT traps stopped all their sshd ($left left)" [ "$left" = 0 ]

# --- nothing left ------------------------------------------------------------
left=$(pgrep -f "$scratch/" | wc -l)
check "no sshd of this test remains ($left)" [ "$left" = 0 ]

echo "1..$n"
[ "$fails" = 0 ]
