#!/bin/bash
# bench/bench-ssh.sh: the ssh fan-out of reops-run against parallel-ssh
# (Debian's pssh) and ansible, side by side on the same loopback sshd hosts
# (tests/lib-sshd.sh), for each host count of SIZES:
#
#   reops-run    a pipeline of one stage, exec: "true"
#   parallel-ssh -p N true
#   ansible      all -m command -a true -f N (cold: a fresh ControlPath
#                directory each run, so no connection is reused)
#
# and a 5-stage pipeline (5 x exec: "true") against 5 parallel-ssh runs.
# For each it reports the best wall time of RUNS runs (ansible: of
# ANSIBLE_RUNS), the runner's own CPU time (user+sys, all its processes),
# its peak RSS, and the CPU time every sshd process of the hosts spent in
# that run (listeners, their sessions and the commands, reaped into the
# listeners' cutime/cstime). The "sshd floor" is that CPU time divided by
# the cores: no runner can finish sooner on this machine, since the hosts'
# side of the work has to be done on the same cores.
#
#   bench/bench-ssh.sh [REOPS_RUN]          (as root: it starts sshd)
#   SIZES="10 50" RUNS=5 bench/bench-ssh.sh ./reops-run
#
# Use a build without sanitizers (see bench-load.sh). Needs /usr/bin/time,
# parallel-ssh (apt-get install pssh) and ansible (apt-get install ansible);
# a missing peer is reported as such and skipped. Every run is bounded by
# timeout(1).
set -u

REOPS_RUN=$(readlink -f "${1:-${REOPS_RUN:-./reops-run}}")
SIZES=${SIZES:-"10 50 200"}
RUNS=${RUNS:-3}
ANSIBLE_RUNS=${ANSIBLE_RUNS:-1}
LIMIT=${LIMIT:-300}		# seconds per run, at most
here=$(cd "$(dirname "$0")/.." && pwd)
CORES=$(nproc)
TICK=$(getconf CLK_TCK)

if [ ! -x /usr/bin/time ] || [ ! -x "$REOPS_RUN" ] || [ "$(id -u)" != 0 ]; then
	echo "bench-ssh: needs root, /usr/bin/time and reops-run ('$REOPS_RUN')" >&2
	exit 2
fi
have_pssh=0; command -v parallel-ssh >/dev/null && have_pssh=1
have_ansible=0; command -v ansible >/dev/null && have_ansible=1

. "$here/tests/lib-sshd.sh"
work=$(mktemp -d /tmp/bench-ssh.XXXXXX) && [ -d "$work" ] || exit 2
trap 'sshd_stop "$work/sshd"; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

max=0
for n in $SIZES; do [ "$n" -gt "$max" ] && max=$n; done
sshd_setup "$work/sshd" >/dev/null && sshd_start "$work/sshd" "$max" || exit 1
port=$(sshd_port "$work/sshd")
cfg=$work/sshd/ssh_config
mapfile -t listeners < <(for i in $(seq 1 "$max"); do sshd_host_pid "$work/sshd" "$i"; done)

# Inventories of the first n hosts for the three runners.
for n in $SIZES; do
	mkdir -p "$work/inv-$n"
	{
		echo "groups:"
		echo "  fleet:"
		echo "    transport: ssh"
		echo "    auth: { user: root, key: $work/sshd/keys/id_ed25519, port: $port }"
		echo "    known-hosts: $work/sshd/known_hosts"
		echo "    hosts:"
		for i in $(seq 1 "$n"); do
			echo "      - { name: h$i, address: $(sshd_host_addr "$i") }"
		done
	} >"$work/inv-$n/fleet.yaml"
	seq -f "h%g" 1 "$n" >"$work/pssh-$n"
	{
		echo "[fleet]"
		for i in $(seq 1 "$n"); do
			echo "h$i ansible_host=$(sshd_host_addr "$i") ansible_port=$port"
		done
		echo "[all:vars]"
		echo "ansible_user=root"
		echo "ansible_python_interpreter=/usr/bin/python3"
	} >"$work/ansible-$n.ini"
done
printf 'hosts: all\nstages:\n  - exec: "true"\n' >"$work/one.yaml"
printf 'hosts: all\nstages:\n%s\n' "$(for i in 1 2 3 4 5; do echo '  - exec: "true"'; done)" \
    >"$work/five.yaml"

# CPU ticks of all the hosts' sshd so far, sessions and commands included.
sshd_ticks () {
	local p s t=0 f
	for p in "${listeners[@]}"; do
		{ read -r s <"/proc/$p/stat"; } 2>/dev/null || continue
		s=${s##*) }
		read -r -a f <<<"$s"
		t=$(( t + f[11] + f[12] + f[13] + f[14] ))
	done
	echo "$t"
}

# Waits (at most 10 s) until no listener has a session left, so the CPU of
# the sessions of a run is in the listeners' counts.
settle () {
	local round busy
	for (( round = 0; round < 200; round++ )); do
		busy=$(ps -e -o ppid= | awk -v l=" ${listeners[*]} " \
		    'index(l, " " $1 " ") { n++ } END { print n + 0 }')
		[ "$busy" = 0 ] && return 0
		sleep 0.05
	done
}

# measure NAME CMD...: one run; sets WALL CPU RSS SSHD (seconds, MB).
measure () {
	local t0 t1 out=$work/time.out rc
	settle
	t0=$(sshd_ticks)
	timeout "$LIMIT" /usr/bin/time -f "%e %U %S %M" -o "$out" "$@" \
	    >/dev/null 2>"$work/err.out"
	rc=$?
	settle
	t1=$(sshd_ticks)
	read -r WALL u s RSS <"$out"
	CPU=$(echo "$u + $s" | bc -l)
	RSS=$(echo "scale=1; $RSS / 1024" | bc -l)
	SSHD=$(echo "scale=2; ($t1 - $t0) / $TICK" | bc -l)
	if [ "$rc" != 0 ]; then
		echo "bench-ssh: $1 failed (exit $rc):" >&2
		tail -3 "$work/err.out" >&2
	fi
	return "$rc"
}

# best NAME RUNS CMD...: the run with the best wall time, as one line.
best () {
	local name=$1 runs=$2 r bw= bc br bs
	shift 2
	for (( r = 0; r < runs; r++ )); do
		measure "$@" || { echo "| $name | failed |"; BEST_WALL=; return 1; }
		if [ -z "$bw" ] || [ "$(echo "$WALL < $bw" | bc -l)" = 1 ]; then
			bw=$WALL bc=$CPU br=$RSS bs=$SSHD
		fi
	done
	BEST_WALL=$bw BEST_SSHD=$bs
	printf '| %s | %.2f s | %.2f s | %.1f MB | %.2f s | %.2f s |\n' \
	    "$name" "$bw" "$bc" "$br" "$bs" "$(echo "$bs / $CORES" | bc -l)"
}

# Helpers as scripts, so /usr/bin/time measures them and their children.
cat >"$work/pssh5" <<EOF
#!/bin/bash
for i in 1 2 3 4 5; do
	parallel-ssh -h "\$1" -p "\$2" -t 60 -x "-F $cfg" true || exit 1
done
EOF
# ControlPersist masters would outlive the run and its CPU count: they
# are told to exit at the end, inside the measured run.
cat >"$work/ansible-run" <<EOF
#!/bin/bash
cp=\$(mktemp -d "$work/cp.XXXXXX")
ANSIBLE_SSH_ARGS="-F $cfg -o ControlMaster=auto -o ControlPersist=60s" \\
ANSIBLE_SSH_CONTROL_PATH_DIR=\$cp ANSIBLE_LOCAL_TEMP=$work/ansible-tmp \\
ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_NOCOLOR=1 \\
    ansible all -i "$work/ansible-\$1.ini" -m command -a true -f "\$1"
rc=\$?
for s in "\$cp"/*; do
	[ -S "\$s" ] && ssh -F "$cfg" -o ControlPath="\$s" -O exit x 2>/dev/null
done
exit \$rc
EOF
chmod +x "$work/pssh5" "$work/ansible-run"

ratio () {
	if [ -n "$2" ] && [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then
		printf '%.3f' "$(echo "$1 / $2" | bc -l)"
	else
		echo n/a
	fi
}

echo "bench-ssh: $(nproc) cores, $("$REOPS_RUN" --version), $(parallel-ssh --version 2>&1 | head -1 | sed 's/^/pssh /'), $(ansible --version 2>/dev/null | head -1)"
echo "| case | wall (best) | runner CPU | runner peak RSS | sshd CPU | sshd floor |"
echo "|---|---|---|---|---|---|"
for n in $SIZES; do
	p1= a1= p5=
	best "reops-run exec, $n hosts" "$RUNS" \
	    "$REOPS_RUN" -q -i "$work/inv-$n" "$work/one.yaml"
	r1=$BEST_WALL floor=$(echo "$BEST_SSHD / $CORES" | bc -l)
	if [ $have_pssh = 1 ]; then
		best "parallel-ssh -p $n, $n hosts" "$RUNS" \
		    parallel-ssh -h "$work/pssh-$n" -p "$n" -t 60 -x "-F $cfg" true
		p1=$BEST_WALL
	fi
	if [ $have_ansible = 1 ]; then
		best "ansible -f $n, $n hosts (cold)" "$ANSIBLE_RUNS" \
		    "$work/ansible-run" "$n"
		a1=$BEST_WALL
	fi
	best "reops-run 5 stages, $n hosts" "$RUNS" \
	    "$REOPS_RUN" -q -i "$work/inv-$n" "$work/five.yaml"
	r5=$BEST_WALL
	if [ $have_pssh = 1 ]; then
		best "5 x parallel-ssh -p $n, $n hosts" "$RUNS" \
		    "$work/pssh5" "$work/pssh-$n" "$n"
		p5=$BEST_WALL
	fi
	printf '| ratios, %s hosts | reops/pssh %s | reops/ansible %s | reops/floor %s | 5-stage/1-stage %s | reops 5/pssh 5 %s |\n' \
	    "$n" "$(ratio "$r1" "$p1")" "$(ratio "$r1" "$a1")" \
	    "$(ratio "$r1" "$floor")" "$(ratio "$r5" "$r1")" \
	    "$(ratio "$r5" "$p5")"
done
