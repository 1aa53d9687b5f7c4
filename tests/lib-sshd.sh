# lib-sshd.sh -- start and stop N real OpenSSH sshd test hosts on loopback.
# (bash only; source it, do not run it)
#
#     . "$srcdir/tests/lib-sshd.sh"
#     dir=$(mktemp -d) ; trap 'sshd_stop "$dir"; rm -rf "$dir"' EXIT
#     sshd_setup "$dir" || exit 99
#     sshd_start "$dir" 3 || exit 99      # hosts h1..h3 on 127.0.0.2..4
#     ssh -F "$dir/ssh_config" h1 true
#
# Functions (status 0 on success; non-zero and a "lib-sshd:" line on stderr
# otherwise).  I counts from 1.
#
#   sshd_setup DIR              user keys, shared host keys, authorized_keys
#   sshd_start DIR N [PORT]     start hosts 1..N (stops DIR's previous hosts
#                               first); writes DIR/known_hosts, DIR/ssh_config
#   sshd_stop DIR               stop every host of DIR; never fails, bounded;
#                               safe in an EXIT trap (also under set -eu)
#   sshd_stop_host DIR I        stop host I (listener and its sessions)
#   sshd_restart_host DIR I     start host I again with its current config
#   sshd_pause_host DIR I       SIGSTOP host I's listener and sessions (a hang:
#                               TCP connects succeed, no SSH banner comes)
#   sshd_resume_host DIR I      SIGCONT them
#   sshd_rekey_host DIR I       restart host I with fresh host keys; DIR's
#                               known_hosts keeps the old ones
#   sshd_host_addr I            print host I's address: 127.0.0.(I+1) for
#                               I<=253, then 127.0.1.1..254, 127.0.2.1, ...
#   sshd_host_pid DIR I         print host I's listener pid
#   sshd_port DIR               print the port (same for all hosts of DIR)
#   sshd_count DIR              print N of the last sshd_start
#   sshd_accepted DIR I         print the count of "Accepted publickey" lines
#                               in host I's log (one per authenticated login)
#
# Files under DIR:
#   keys/id_ed25519           unencrypted ed25519 user key (+ .pub)
#   keys/id_ed25519_enc       ed25519, passphrase $SSHD_TEST_PASSPHRASE
#                             (default "test-pass")
#   keys/id_ecdsa, keys/id_rsa  unencrypted ecdsa-256 / rsa-2048 user keys
#   keys/authorized_keys      accepts all four
#   keys/ssh_host_<type>_key  host keys shared by all hosts
#   known_hosts               "[127.0.0.N]:PORT <key>" for every started host
#   ssh_config                Host h1..hN; `ssh -F DIR/ssh_config hN cmd`
#   port, count, start_ms     port, N, wall time of the last sshd_start
#   hosts/I/sshd_config sshd.pid sshd.log (sshd -E) launch.pid
#   hosts/I/ssh_host_*_key    host I's own keys after sshd_rekey_host
#
# Environment knobs:
#   SSHD_TEST_PASSPHRASE     passphrase of keys/id_ed25519_enc ("test-pass")
#   SSHD_TEST_TIMEOUT        readiness / stop wait, seconds (10)
#   SSHD_TEST_HOSTKEY_TYPES  host key types ("ed25519"; e.g. "ed25519 ecdsa
#                            rsa" -- an RSA host key adds ~15 ms per
#                            connection, sshd reloads its keys on each one)
#   SSHD_TEST_FAST_SHELL     1 (default): skip root's ~/.bashrc, see below
#
# Notes / pitfalls:
# - sshd must be started by absolute path (it re-execs itself for every
#   connection) and needs its privsep dir /run/sshd (created here, 0755).
# - Remote commands run as root through root's login shell: `bash -c CMD`.
#   Debian's bash sources ~/.bashrc when SSH_CLIENT is set and SHLVL<2, and
#   root's ~/.bashrc here runs `pyenv init` (~80-140 ms per command).  Each
#   host's sshd_config has `SetEnv SHLVL=1`, so bash starts at level 2 and
#   skips ~/.bashrc (the command sees SHLVL=2, PATH from sshd's default).
# - MaxStartups 200:30:400: the default 10:30:100 randomly drops concurrent
#   unauthenticated connections to one host, which a parallel runner hits.
# - Readiness = the PidFile, written by sshd after its socket is bound; a
#   host whose process dies (bind failure, bad config) fails at once.
# - Without PORT, the port is derived from $$ in 20000-39999, skipped if `ss`
#   shows a listener on it, and retried (up to 8 ports) if sshd's own bind
#   fails with "Address already in use".  Concurrent scripts need their own
#   DIR; they then get their own port.
# - Each sshd runs as `setsid -w sshd -D` from a double fork: its parent is
#   init (a bare `wait` in a test never blocks on it), stdio is /dev/null and
#   inherited fds >2 are closed (make / TAP pipes never wait on it).  PID 1
#   here reaps lazily, so a killed sshd may show as <defunct> for a while;
#   the functions count a zombie as gone.
# - A SIGSTOPped sshd ignores SIGTERM until continued: stopping sends TERM,
#   then CONT, waits up to SSHD_TEST_TIMEOUT, then KILLs what is left.

SSHD_BIN=/usr/sbin/sshd
SSH_KEYGEN=${SSH_KEYGEN:-ssh-keygen}

_sshd_err() { echo "lib-sshd: $*" >&2; }

_sshd_timeout_ms() { REPLY=$(( ${SSHD_TEST_TIMEOUT:-10} * 1000 )); }

# _sshd_now_ms: wall clock in ms into REPLY (bash 5 EPOCHREALTIME, no fork).
_sshd_now_ms() {
    local t=${EPOCHREALTIME:-}
    if [ -n "$t" ]; then
        t=${t/[.,]/}
        REPLY=$(( 10#$t / 1000 ))
    else
        REPLY=$(( $(date +%s%N) / 1000000 ))
    fi
}

_sshd_hostkey_types() { REPLY=${SSHD_TEST_HOSTKEY_TYPES:-ed25519}; }

# _sshd_read VAR FILE: first line of FILE into VAR, no fork.
_sshd_read() {
    local _l=
    { IFS= read -r _l || [ -n "$_l" ]; } 2>/dev/null < "$2" || return 1
    printf -v "$1" '%s' "$_l"
}

# _sshd_gone PID: true if PID does not exist or is a zombie.
_sshd_gone() {
    local s=
    { IFS= read -r s; } 2>/dev/null < "/proc/$1/stat" || return 0
    s=${s##*) }
    case ${s%% *} in Z|X|'') return 0;; esac
    return 1
}

_sshd_isnum() { case $1 in ''|*[!0-9]*) return 1;; esac; return 0; }

_sshd_abs() { (cd "$1" 2>/dev/null && pwd -P); }

# _sshd_addr I: host I's address into REPLY.
_sshd_addr() {
    local i=$1 k b
    _sshd_isnum "$i" && [ "$i" -ge 1 ] && [ "$i" -le 16000000 ] ||
        { _sshd_err "bad host index '$i'"; return 1; }
    k=$(( i - 1 ))
    if [ "$k" -lt 253 ]; then
        REPLY=127.0.0.$(( k + 2 ))               # 127.0.0.2 .. 127.0.0.254
    else
        k=$(( k - 253 ))
        b=$(( 1 + k / 254 ))                     # 127.0.1.1 .. 127.0.1.254 ..
        REPLY=127.$(( b / 256 )).$(( b % 256 )).$(( 1 + k % 254 ))
    fi
}

sshd_host_addr() { _sshd_addr "$1" || return 1; echo "$REPLY"; }

# ---------------------------------------------------------------- setup ----

_sshd_setup() {
    local dir=$1 pass=${SSHD_TEST_PASSPHRASE:-test-pass} t
    [ -n "$dir" ] || { _sshd_err "usage: sshd_setup DIR"; return 2; }
    [ -x "$SSHD_BIN" ] || { _sshd_err "$SSHD_BIN not found"; return 1; }
    mkdir -p "$dir/keys" "$dir/hosts" || return 1
    dir=$(_sshd_abs "$dir") || return 1
    chmod 700 "$dir/keys" || return 1
    rm -f "$dir/keys/"id_* "$dir/keys/"ssh_host_* "$dir/keys/authorized_keys"

    "$SSH_KEYGEN" -q -t ed25519 -N '' -C reops-test-ed25519 \
        -f "$dir/keys/id_ed25519" </dev/null || return 1
    "$SSH_KEYGEN" -q -t ed25519 -N "$pass" -C reops-test-ed25519-enc \
        -f "$dir/keys/id_ed25519_enc" </dev/null || return 1
    "$SSH_KEYGEN" -q -t ecdsa -b 256 -N '' -C reops-test-ecdsa \
        -f "$dir/keys/id_ecdsa" </dev/null || return 1
    "$SSH_KEYGEN" -q -t rsa -b 2048 -N '' -C reops-test-rsa \
        -f "$dir/keys/id_rsa" </dev/null || return 1
    cat "$dir/keys/id_ed25519.pub" "$dir/keys/id_ed25519_enc.pub" \
        "$dir/keys/id_ecdsa.pub" "$dir/keys/id_rsa.pub" \
        > "$dir/keys/authorized_keys" || return 1

    _sshd_hostkey_types
    for t in $REPLY; do
        "$SSH_KEYGEN" -q -t "$t" -N '' -C reops-test-host \
            -f "$dir/keys/ssh_host_${t}_key" </dev/null || return 1
    done
    : > "$dir/known_hosts"
}
sshd_setup() { _sshd_setup "$@" && return 0; return $?; }

# ---------------------------------------------------------------- start ----

_sshd_write_config() {
    local dir=$1 i=$2 port=$3 hd=$1/hosts/$2 t k addr types
    _sshd_addr "$i" || return 1; addr=$REPLY
    _sshd_hostkey_types; types=$REPLY
    mkdir -p "$hd" || return 1
    {
        echo "# generated by tests/lib-sshd.sh: host $i"
        echo "ListenAddress $addr"
        echo "Port $port"
        for t in $types; do
            k=$dir/keys/ssh_host_${t}_key
            [ -f "$hd/ssh_host_${t}_key" ] && k=$hd/ssh_host_${t}_key
            echo "HostKey $k"
        done
        echo "PidFile $hd/sshd.pid"
        echo "AuthorizedKeysFile $dir/keys/authorized_keys"
        echo "PasswordAuthentication no"
        echo "KbdInteractiveAuthentication no"
        echo "PubkeyAuthentication yes"
        echo "PermitRootLogin yes"
        echo "StrictModes no"
        echo "UsePAM no"
        echo "MaxStartups 200:30:400"
        echo "MaxSessions 64"
        echo "LogLevel VERBOSE"
        echo "UseDNS no"
        echo "PrintMotd no"
        echo "PrintLastLog no"
        echo "Subsystem sftp internal-sftp"
        if [ "${SSHD_TEST_FAST_SHELL:-1}" != 0 ]; then
            echo "# bash skips ~/.bashrc for ssh commands if it starts at SHLVL>=2"
            echo "SetEnv SHLVL=1"
        fi
    } > "$hd/sshd_config"
}

# _sshd_launch DIR I: start host I's sshd, detached; do not wait.
_sshd_launch() {
    local hd=$1/hosts/$2
    rm -f "$hd/sshd.pid" "$hd/launch.pid"
    (
        (
            for fd in /proc/$BASHPID/fd/*; do
                fd=${fd##*/}
                _sshd_isnum "$fd" && [ "$fd" -gt 2 ] && eval "exec $fd>&-"
            done 2>/dev/null
            exec setsid -w "$SSHD_BIN" -D -f "$hd/sshd_config" -E "$hd/sshd.log"
        ) </dev/null >/dev/null 2>>"$hd/launch.err" &
        echo $! > "$hd/launch.pid"
    )
}

# _sshd_wait_ready DIR I...: wait (bounded) until every listed host has
# written its PidFile; a host whose process died fails at once.
_sshd_wait_ready() {
    local dir=$1; shift
    local deadline pending left i lp rc=0 round log
    _sshd_now_ms; deadline=$REPLY; _sshd_timeout_ms; deadline=$(( deadline + REPLY ))
    pending=("$@")
    for (( round = 0; round < 100000; round++ )); do
        left=()
        for i in "${pending[@]}"; do
            [ -s "$dir/hosts/$i/sshd.pid" ] && continue
            lp=
            if _sshd_read lp "$dir/hosts/$i/launch.pid" && _sshd_gone "$lp"; then
                [ -s "$dir/hosts/$i/sshd.pid" ] && continue
                _sshd_addr "$i"
                log=$(tail -n 3 "$dir/hosts/$i/sshd.log" "$dir/hosts/$i/launch.err" 2>/dev/null |
                      grep -v '^==>' | grep . | tr '\n' ' ')
                _sshd_err "host $i ($REPLY) failed to start: $log"
                rc=1
                continue
            fi
            left+=("$i")
        done
        pending=("${left[@]}")
        [ "${#pending[@]}" -eq 0 ] && return "$rc"
        _sshd_now_ms
        if [ "$REPLY" -ge "$deadline" ]; then
            _sshd_err "timeout: ${#pending[@]} host(s) not ready (first: h${pending[0]})"
            return 1
        fi
        sleep 0.01
    done
    return 1
}

# _sshd_port_busy PORT: true if `ss` shows a TCP listener on PORT.
_sshd_port_busy() {
    local out
    command -v ss >/dev/null 2>&1 || return 1
    out=$(ss -Htln "sport = :$1" 2>/dev/null)
    [ -n "$out" ]
}

_sshd_write_client_files() {
    local dir=$1 n=$2 port=$3 i t types name keys=() k a b
    _sshd_hostkey_types; types=$REPLY
    for t in $types; do
        _sshd_read k "$dir/keys/ssh_host_${t}_key.pub" || return 1
        read -r a b _ <<< "$k"
        keys+=("$a $b")
    done
    {
        for (( i = 1; i <= n; i++ )); do
            _sshd_addr "$i"
            if [ "$port" = 22 ]; then name=$REPLY; else name="[$REPLY]:$port"; fi
            for k in "${keys[@]}"; do echo "$name $k"; done
        done
    } > "$dir/known_hosts" || return 1
    {
        echo "# generated by tests/lib-sshd.sh"
        for (( i = 1; i <= n; i++ )); do
            _sshd_addr "$i"
            echo "Host h$i"
            echo "    HostName $REPLY"
            echo "    Port $port"
        done
        echo "Host *"
        echo "    User root"
        echo "    IdentityFile $dir/keys/id_ed25519"
        echo "    IdentitiesOnly yes"
        echo "    UserKnownHostsFile $dir/known_hosts"
        echo "    GlobalKnownHostsFile /dev/null"
        echo "    StrictHostKeyChecking yes"
        echo "    UpdateHostKeys no"
        echo "    CheckHostIP no"
        echo "    BatchMode yes"
        echo "    PreferredAuthentications publickey"
        echo "    ConnectTimeout 5"
        echo "    ControlMaster no"
        echo "    ControlPath none"
        echo "    # curve25519 first: ~90 ms faster per connection than sntrup761"
        echo "    KexAlgorithms ^curve25519-sha256"
    } > "$dir/ssh_config" || return 1
    chmod 600 "$dir/ssh_config"
}

_sshd_start() {
    local dir=$1 n=${2:-} want=${3:-} port attempt tries i t0
    [ -n "$dir" ] && [ -n "$n" ] || { _sshd_err "usage: sshd_start DIR N [PORT]"; return 2; }
    _sshd_isnum "$n" && [ "$n" -ge 1 ] || { _sshd_err "sshd_start: bad N '$n'"; return 2; }
    [ -z "$want" ] || _sshd_isnum "$want" || { _sshd_err "sshd_start: bad PORT '$want'"; return 2; }
    dir=$(_sshd_abs "$dir") || { _sshd_err "no such directory: $1"; return 1; }
    [ -s "$dir/keys/authorized_keys" ] || { _sshd_err "run sshd_setup $dir first"; return 1; }
    mkdir -p /run/sshd && chmod 755 /run/sshd || return 1
    _sshd_now_ms; t0=$REPLY

    _sshd_stop "$dir"                 # a second start replaces the first
    if [ -n "$want" ]; then tries=1; else tries=8; fi
    for (( attempt = 0; attempt < tries; attempt++ )); do
        if [ -n "$want" ]; then
            port=$want
        else
            port=$(( 20000 + ($$ * 7919 + attempt * 104729) % 20000 ))
            _sshd_port_busy "$port" && continue
        fi
        echo "$port" > "$dir/port"
        echo "$n" > "$dir/count"
        for (( i = 1; i <= n; i++ )); do
            rm -f "$dir/hosts/$i/sshd.log" "$dir/hosts/$i/launch.err" \
                  "$dir/hosts/$i/"ssh_host_*
            _sshd_write_config "$dir" "$i" "$port" || return 1
        done
        for (( i = 1; i <= n; i++ )); do
            _sshd_launch "$dir" "$i"
        done
        if _sshd_wait_ready "$dir" $(seq 1 "$n"); then
            _sshd_write_client_files "$dir" "$n" "$port" || return 1
            _sshd_now_ms; echo $(( REPLY - t0 )) > "$dir/start_ms"
            return 0
        fi
        _sshd_stop "$dir"
        if [ -z "$want" ] &&
           grep -qs 'Address already in use' "$dir"/hosts/*/sshd.log; then
            _sshd_err "port $port in use, trying another"
            continue
        fi
        return 1
    done
    _sshd_err "sshd_start: no usable port after $tries attempts"
    return 1
}
sshd_start() { _sshd_start "$@" && return 0; return $?; }

# ------------------------------------------------------- stop and signals ----

sshd_port()  { cat "$1/port" 2>/dev/null; }
sshd_count() { cat "$1/count" 2>/dev/null; }

# _sshd_pid DIR I: host I's listener pid into REPLY, if it is running and
# really is DIR's sshd (guards against a recycled pid).
_sshd_pid() {
    local p= cmd=
    _sshd_read p "$1/hosts/$2/sshd.pid" && _sshd_isnum "$p" || return 1
    _sshd_gone "$p" && return 1
    local -a argv=()
    mapfile -d "" argv 2>/dev/null < "/proc/$p/cmdline" || return 1
    cmd="${argv[*]}"
    case $cmd in *"$1/hosts/$2/"*) REPLY=$p; return 0;; esac
    return 1
}

sshd_host_pid() {
    local dir
    dir=$(_sshd_abs "$1") && _sshd_pid "$dir" "$2" && echo "$REPLY"
}

# _sshd_tree PID...: the PIDs and all their descendants, one per line
# (one `ps` snapshot).
_sshd_tree() {
    ps -e -o pid=,ppid= 2>/dev/null | awk -v roots="$*" '
        { kids[$2] = kids[$2] " " $1 }
        END {
            n = split(roots, q, " ")
            for (h = 1; h <= n && h <= 100000; h++) {
                p = q[h]; if (p in seen) continue; seen[p] = 1; print p
                m = split(kids[p], c, " ")
                for (j = 1; j <= m; j++) q[++n] = c[j]
            }
        }'
}

# _sshd_kill_hosts DIR I...: TERM+CONT each listener and its sessions, wait
# (bounded), KILL the rest.  Always returns 0.
_sshd_kill_hosts() {
    local dir=$1; shift
    local i roots=() all=() alive p deadline round
    for i in "$@"; do
        _sshd_pid "$dir" "$i" && roots+=("$REPLY")
        rm -f "$dir/hosts/$i/sshd.pid"
    done
    [ "${#roots[@]}" -eq 0 ] && return 0
    mapfile -t all < <(_sshd_tree "${roots[@]}")
    [ "${#all[@]}" -eq 0 ] && all=("${roots[@]}")
    kill -TERM "${all[@]}" 2>/dev/null
    kill -CONT "${all[@]}" 2>/dev/null       # a paused sshd needs this
    _sshd_now_ms; deadline=$REPLY; _sshd_timeout_ms; deadline=$(( deadline + REPLY ))
    for (( round = 0; round < 100000; round++ )); do
        alive=()
        for p in "${all[@]}"; do _sshd_gone "$p" || alive+=("$p"); done
        [ "${#alive[@]}" -eq 0 ] && return 0
        _sshd_now_ms; [ "$REPLY" -ge "$deadline" ] && break
        sleep 0.01
    done
    _sshd_err "SIGKILL to ${#alive[@]} process(es) still alive after SIGTERM"
    kill -KILL "${alive[@]}" 2>/dev/null
    return 0
}

_sshd_stop() {
    local dir=${1:-} f i hosts=()
    [ -n "$dir" ] && [ -d "$dir/hosts" ] || return 0
    dir=$(_sshd_abs "$dir") || return 0
    for f in "$dir"/hosts/*/sshd.pid; do
        [ -e "$f" ] || continue
        i=${f%/sshd.pid}; hosts+=("${i##*/}")
    done
    [ "${#hosts[@]}" -eq 0 ] || _sshd_kill_hosts "$dir" "${hosts[@]}"
    return 0
}
sshd_stop() { _sshd_stop "$@" || true; return 0; }

_sshd_stop_host() {
    local dir
    [ -n "${1:-}" ] && [ -n "${2:-}" ] || { _sshd_err "usage: sshd_stop_host DIR I"; return 2; }
    dir=$(_sshd_abs "$1") || { _sshd_err "no such directory: $1"; return 1; }
    _sshd_kill_hosts "$dir" "$2"
}
sshd_stop_host() { _sshd_stop_host "$@" && return 0; return $?; }

# _sshd_signal_host DIR I SIG: SIG to host I's listener and its sessions.
_sshd_signal_host() {
    local dir
    dir=$(_sshd_abs "${1:-}") || { _sshd_err "no such directory: ${1:-}"; return 1; }
    _sshd_pid "$dir" "${2:-}" || { _sshd_err "host ${2:-} is not running"; return 1; }
    kill "-$3" $(_sshd_tree "$REPLY") 2>/dev/null || true
}
sshd_pause_host()  { _sshd_signal_host "${1:-}" "${2:-}" STOP && return 0; return $?; }
sshd_resume_host() { _sshd_signal_host "${1:-}" "${2:-}" CONT && return 0; return $?; }

_sshd_restart_host() {
    local dir
    dir=$(_sshd_abs "${1:-}") || { _sshd_err "no such directory: ${1:-}"; return 1; }
    [ -f "$dir/hosts/${2:-}/sshd_config" ] || { _sshd_err "host ${2:-} was never started"; return 1; }
    mkdir -p /run/sshd && chmod 755 /run/sshd || return 1
    _sshd_kill_hosts "$dir" "$2"
    _sshd_launch "$dir" "$2"
    _sshd_wait_ready "$dir" "$2"
}
sshd_restart_host() { _sshd_restart_host "$@" && return 0; return $?; }

_sshd_rekey_host() {
    local dir i=${2:-} t port
    dir=$(_sshd_abs "${1:-}") || { _sshd_err "no such directory: ${1:-}"; return 1; }
    [ -f "$dir/hosts/$i/sshd_config" ] || { _sshd_err "host $i was never started"; return 1; }
    _sshd_read port "$dir/port" || return 1
    _sshd_hostkey_types
    for t in $REPLY; do
        rm -f "$dir/hosts/$i/ssh_host_${t}_key" "$dir/hosts/$i/ssh_host_${t}_key.pub"
        "$SSH_KEYGEN" -q -t "$t" -N '' -C "reops-test-host-$i-rekeyed" \
            -f "$dir/hosts/$i/ssh_host_${t}_key" </dev/null || return 1
    done
    _sshd_write_config "$dir" "$i" "$port" || return 1
    _sshd_restart_host "$dir" "$i"
}
sshd_rekey_host() { _sshd_rekey_host "$@" && return 0; return $?; }

sshd_accepted() {
    local n
    n=$(grep -c 'Accepted publickey' "${1:-}/hosts/${2:-}/sshd.log" 2>/dev/null)
    echo "${n:-0}"
}
