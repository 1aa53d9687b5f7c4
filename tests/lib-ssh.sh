# tests/lib-ssh.sh: real sshd test hosts for the ssh transport tests, and
# inventories for them in the test's trash directory. Source it after
# test-lib.sh:
#
#   ssh_hosts 3                       # h1..h3 on 127.0.0.2..4, one port
#   ssh_group web h1 h2 -- "host-keys: accept-new"  >hosts.d/web.yaml
#   ...
#   ssh_done                          # stops the hosts, then test_done
#
# The hosts are stopped on any exit; test_done removes the trash directory,
# so ssh_done stops them first.

. "$SRCDIR/tests/lib-sshd.sh"

if [ "$(id -u)" != 0 ] || [ ! -x /usr/sbin/sshd ]; then
	echo "1..0 # SKIP needs root and /usr/sbin/sshd for loopback test hosts"
	cd "$BUILDDIR" && rm -rf "$TRASH"
	exit 0
fi

SSHD_DIR="$TRASH/sshd"
# libssh2 1.10 leaks a BIGNUM each time it loads an ECDSA key; that is
# theirs, not ours (fixed in later libssh2).
LSAN_OPTIONS="suppressions=$SRCDIR/tests/lsan-libssh2.supp:print_suppressions=0"
export LSAN_OPTIONS
unset SSH_AUTH_SOCK
trap 'sshd_stop "$SSHD_DIR"' EXIT

# ssh_hosts N: start N hosts; a setup failure is a hard error (99).
ssh_hosts () {
	sshd_setup "$SSHD_DIR" >/dev/null &&
	sshd_start "$SSHD_DIR" "$1" || {
		echo "Bail out! unable to start $1 sshd test hosts"
		exit 99
	}
	SSH_PORT=$(sshd_port "$SSHD_DIR")
	SSH_KEYS="$SSHD_DIR/keys"
	SSH_KNOWN="$SSHD_DIR/known_hosts"
}

# ssh_group NAME HOST... [-- GROUP-LINE...]: a hosts.d file for hosts
# hI (by index) with the test key and known_hosts, unless lines replace
# them (a line "auth: ..." or "known-hosts: ..." wins over the default).
ssh_group () {
	name=$1
	shift
	hosts=
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		hosts="$hosts $1"
		shift
	done
	[ $# -gt 0 ] && shift
	extra=$(printf '%s\n' "$@")
	echo "groups:"
	echo "  $name:"
	echo "    transport: ssh"
	printf '%s\n' "$extra" | grep -q '^auth:' ||
		echo "    auth: { user: root, key: $SSH_KEYS/id_ed25519, port: $SSH_PORT }"
	printf '%s\n' "$extra" | grep -q '^known-hosts:' ||
		echo "    known-hosts: $SSH_KNOWN"
	[ -n "$extra" ] && printf '%s\n' "$extra" | sed -e 's/^/    /'
	echo "    hosts:"
	for h in $hosts; do
		i=${h#h}
		echo "      - { name: $h, address: $(sshd_host_addr "$i") }"
	done
}

# pipeline FILE SELECTOR STAGE...: a pipeline file of the given stages.
pipeline () {
	name=$1
	shift
	{
		echo "hosts: $1"
		shift
		echo "stages:"
		for s in "$@"; do
			echo "  - $s"
		done
	} >"$name"
}

ssh_done () {
	sshd_stop "$SSHD_DIR"
	test_done
}
