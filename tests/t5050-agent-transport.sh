#!/bin/bash
# t5050: the agent transport of reops-run against real reops-agent
# processes on the loopback sshd test hosts' addresses: the host stages
# over the agent give the same tables as over local and ssh; each fault is
# a row with its reason while the others go on; fallback: ssh; deadlines
# and ^C leave nothing running; 5 MB with NUL bytes arrives whole; a
# secret reaches the command on stdin, never on a command line.
. "$SRCDIR/tests/test-lib.sh"
. "$SRCDIR/tests/lib-ssh.sh"
. "$SRCDIR/tests/lib-agent.sh"
# lib-agent's trap would replace lib-ssh's: stop both.
trap 'agent_stop_all; sshd_stop "$SSHD_DIR"' EXIT

PY=/usr/bin/python3
M=t5050-$$

ssh_hosts 3
agent_keys || { echo "Bail out! unable to make agent keys"; exit 99; }
agent_start a1 "$(sshd_host_addr 1)" &&
agent_start a2 "$(sshd_host_addr 2)" ||
	{ echo "Bail out! unable to start the test agents"; exit 99; }
A1=$(sshd_host_addr 1) A2=$(sshd_host_addr 2) A3=$(sshd_host_addr 3)
# Both agents share a port number only by chance: each keeps its own.
P1=$(sed -e 's/.*://' a1.endpoint)
P2=$(sed -e 's/.*://' a2.endpoint)
chmod 600 runner.key
{
	echo "# pinned by hand from agent.key.pub"
	echo "$A1:$P1 $(cat agent.key.pub)"
	echo "$A2:$P2 $(cat agent.key.pub) a2's agent"
} >known_agents

# agent_group NAME [LINE...] -- HOST:ADDR:PORT...: an agent group file.
agent_group () {
	local name=$1
	shift
	echo "groups:"
	echo "  $name:"
	echo "    transport: agent"
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		echo "    $1"
		shift
	done
	shift
	echo "    hosts:"
	for h in "$@"; do
		IFS=: read -r n a p <<-EOF
		$h
		EOF
		echo "      - { name: $n, address: $a }"
	done
}

# Three inventories of the same two hosts, one per transport.
mkdir -p inv-local inv-ssh inv-agent
cat >inv-local/g.yaml <<YAML
groups:
  g:
    transport: local
    hosts: [h1, h2]
YAML
ssh_group g h1 h2 >inv-ssh/g.yaml
# Both agents listen on their own port; one group per port.
{
	agent_group g "agent: { port: $P1, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" -- "h1:$A1"
	agent_group g2 "agent: { port: $P2, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" -- "h2:$A2" | sed -e 1d
} >inv-agent/g.yaml

# norm FILE: the --json table without what differs by nature (durations,
# the group, a host's uptime), one sorted line a row.
norm () {
	$PY -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    for k in ("duration_ms", "group", "uptime"):
        d.pop(k, None)
    print(json.dumps(d, sort_keys=True))
' "$1" | sort
}

test_expect_success 'exec over the agent: stdout, stderr, code' '
	pipeline e.yaml all "exec: \"echo out-\${target}; echo err >&2; exit 3\"" &&
	test_exit 1 reops_run -i inv-agent --json e.yaml >out &&
	json_get stdout out >got &&
	printf "out-h1\nout-h2\n" >want && test_cmp want got &&
	json_get stderr out >got && printf "err\nerr\n" >want &&
	test_cmp want got &&
	json_get code out >got && printf "3\n3\n" >want && test_cmp want got &&
	test_grep "exec .echo out-h1" a1.log
'

# The same pipelines over local, ssh and agent, on the same hosts.
mkdir -p dest
head -c 70000 /dev/urandom >blob
printf "\0\377\n" >>blob
cat >ok.yaml <<YAML
hosts: all
stages:
  - ping
  - facts
  - copy: { src: blob, dest: "$TRASH/dest/\${target}.bin", mode: "0640" }
  - exec: "printf 'o:%s\\\\n' \${target}; printf 'e\\\\n' >&2; printf 'no newline'"
  - exec: "echo o:\${target}; echo e >&2; kill -TERM \$\$"
YAML
pipeline fail.yaml all "exec: \"echo out; echo err >&2; exit 7\""
# fetch and ls: commands the stages build, the same over every transport.
mkdir -p lsdir && : >lsdir/a && : >"lsdir/b c"
pipeline fetch.yaml all "fetch: { src: \"$TRASH/blob\", dest: \"$TRASH/fetched\" }" \
    "ls: \"$TRASH/lsdir\""
pipeline slow.yaml all "exec: { command: \"echo start; exec $(marked_sleep cmp) 30\", timeout: 1 }"

for p in ok fail slow fetch; do
	for tr in local ssh agent; do
		test_expect_success "three transports: $p.yaml over $tr" "
			rm -f dest/*.bin &&
			{ reops_run -i inv-$tr --json $p.yaml >$p.$tr.json 2>$p.$tr.err; true; } &&
			norm $p.$tr.json >$p.$tr.norm &&
			test \$(wc -l <$p.$tr.norm) = 2 &&
			if [ $p = ok ]; then cmp blob dest/h1.bin && cmp blob dest/h2.bin &&
			    test \"\$(stat -c %a dest/h1.bin)\" = 640; fi &&
			if [ $p = fetch ]; then cmp blob fetched/h1/blob &&
			    cmp blob fetched/h2/blob && rm -r fetched; fi
		"
	done
	test_expect_success "three transports: $p.yaml, the same tables" "
		test_cmp $p.local.norm $p.ssh.norm &&
		test_cmp $p.local.norm $p.agent.norm
	"
done

test_expect_success 'the tables compared say what they should' '
	json_get code ok.agent.json >got && printf "143\n143\n" >want &&
	test_cmp want got &&
	json_get stdout ok.agent.json | head -1 >got &&
	echo "o:h1" >want && test_cmp want got &&
	json_get sha256 ok.agent.json | sort -u >got &&
	sha256sum <blob | cut -d" " -f1 >want && test_cmp want got &&
	json_get code slow.agent.json >got && printf "124\n124\n" >want &&
	test_cmp want got &&
	json_get code fail.agent.json >got && printf "7\n7\n" >want &&
	test_cmp want got &&
	test_grep "^os$" <(json_get os ok.agent.json | sed -e "s/.*/os/") &&
	test_grep "put-file .$TRASH/dest/h1.bin. mode 0640 70003 bytes" a1.log &&
	test_none_left "$(marked_sleep cmp)"
'

test_expect_success '5 MB with NUL bytes arrives whole, as locally' '
	pipeline big.yaml all "exec: \"head -c 5000000 /dev/zero; printf end; head -c 3 /dev/zero >&2\"" &&
	reops_run -i inv-agent --json big.yaml >big.agent &&
	reops_run -i inv-local --json big.yaml >big.local &&
	$PY -c "
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert d[\"stdout\"] == \"\\0\" * 5000000 + \"end\", len(d[\"stdout\"])
    assert d[\"stderr\"] == \"\\0\" * 3, d[\"stderr\"]
" big.agent &&
	norm big.agent >a && norm big.local >l && cmp a l
'

test_expect_success 'a deadline over the agent: 124, and the command is gone' '
	mk=$(marked_sleep dl) &&
	pipeline dl.yaml all "exec: { command: \"$mk 300 & exec $mk 301\", timeout: 1 }" &&
	test_exit 1 reops_run -i inv-agent --json dl.yaml >out &&
	json_get stderr out >got &&
	printf "reops-run: timed out after 1s\nreops-run: timed out after 1s\n" >want &&
	test_cmp want got &&
	test_none_left "$mk"
'

test_expect_success '^C over the agent: 130, and the commands are gone' '
	mk=$(marked_sleep int) &&
	pipeline int.yaml all "exec: \"$mk 300 & exec $mk 301\"" &&
	{ "$REOPS_RUN" -i inv-agent --json int.yaml >out 2>err & pid=$!; } &&
	i=0 && while [ "$(pgrep -c -f "^$mk 301")" -lt 2 ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1)); done ;
	kill -INT $pid &&
	{ wait $pid; code=$?; } ; test $code = 130 &&
	json_get code out >got && printf "130\n130\n" >want &&
	test_cmp want got &&
	test "$(json_get stderr out | grep -c "^reops-run: interrupted$")" = 2 &&
	test_none_left "$mk"
'

# A branch's lanes run in threads, each with a run of its own: each its
# own agent clients, closed with the lane, never the stage's.
test_expect_success 'branch lanes over the agent, and the stage after them' '
	cat >br.yaml <<-\EOF &&
	hosts: all
	stages:
	  - exec: echo before
	  - branch:
	      one:
	        when: { column: target, match: "1$" }
	        stages:
	          - exec: "echo one-${target}"
	      two:
	        when: any-status
	        stages:
	          - exec: "echo two-${target}"
	  - exec: "echo after-${target}"
	EOF
	reops_run -i inv-agent --json br.yaml >out 2>err &&
	json_get stdout out >got && printf "after-h1\nafter-h2\n" >want &&
	test_cmp want got
'

test_expect_success 'a secret goes on stdin: not on a command line, not logged' '
	tok=sekrit-$$-value &&
	cat >sec.yaml <<-EOF &&
	hosts: all
	params:
	  token: { secret: true, env: T5050_TOKEN }
	stages:
	  - exec: "printf %s \${token} | sha256sum | cut -d\\" \\" -f1; ps -o args= -e >>$TRASH/ps.out"
	EOF
	T5050_TOKEN=$tok reops_run -i inv-agent --json sec.yaml >out 2>err &&
	printf %s "$tok" | sha256sum | cut -d" " -f1 >want &&
	json_get stdout out | sed -n 1p >got && test_cmp want got &&
	test_grep "sha256sum" ps.out &&
	! grep -F "$tok" out err a1.log a2.log ps.out &&
	test_grep "exec-input|bytes of input" a1.log
'

# Faults: one group per fault, one healthy host beside them.
bad_key=$(reops_agent --keygen other.key) && chmod 600 other.key
cp runner.key loose.key && chmod 640 loose.key
{
	echo "$A3:$P1 $(cat agent.key.pub)"	# nothing listens there
	echo "$A2:$P1 $bad_key"			# a2's port is P2: see wrong-key
} >known_faults
# Not sed: a Z85 key may hold "&".
{ grep -v "^$A1:$P1 " known_agents; echo "$A1:$P1 $bad_key"; } >known_wrong

test_expect_success 'faults: each host its row and reason, the others go on' '
	{
		agent_group g-ok "agent: { port: $P2, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" -- "good:$A2"
		agent_group g-nokey "agent: { port: $P1, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" -- "unpinned:127.0.0.1" | sed -e 1d
		agent_group g-down "connect-timeout: 2" "agent: { port: $P1, key: $TRASH/runner.key, known-agents: $TRASH/known_faults }" -- "down:$A3" | sed -e 1d
		agent_group g-wrongkey "agent: { port: $P1, key: $TRASH/runner.key, known-agents: $TRASH/known_wrong }" -- "wrongkey:$A1" | sed -e 1d
		agent_group g-refused "agent: { port: $P1, key: $TRASH/other.key, known-agents: $TRASH/known_agents }" -- "refused:$A1" | sed -e 1d
		agent_group g-loose "agent: { port: $P1, key: $TRASH/loose.key, known-agents: $TRASH/known_agents }" -- "loose:$A1" | sed -e 1d
	} >inv-faults.yaml &&
	mkdir -p inv-f && mv inv-faults.yaml inv-f/ &&
	pipeline f.yaml all "exec: echo hi" &&
	start=$(date +%s) &&
	test_exit 3 reops_run -i inv-f --json f.yaml >out 2>err &&
	end=$(date +%s) &&
	$PY -c "
import json, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows[d[\"target\"]] = d
def has(t, status, text):
    d = rows[t]
    assert d[\"status\"] == status, d
    assert text in d[\"stderr\"], (text, d)
    assert d[\"stderr\"].count(chr(10)) == 1, d
assert rows[\"good\"][\"status\"] == \"ok\", rows[\"good\"]
assert rows[\"good\"][\"stdout\"] == \"hi\n\"
has(\"unpinned\", \"unreachable\", \"no agent key is pinned for 127.0.0.1:$P1 in \x27$TRASH/known_agents\x27: pin it with the enroll stage, or by hand\")
has(\"unpinned\", \"unreachable\", \"echo \\\"127.0.0.1:$P1 \$(cat agent.key.pub)\\\" >> $TRASH/known_agents\")
has(\"down\", \"unreachable\", \"no agent is listening at tcp://$A3:$P1\")
has(\"wrongkey\", \"unreachable\", \"CURVE handshake with \x27tcp://$A1:$P1\x27 failed\")
has(\"wrongkey\", \"unreachable\", \"the key pinned for it is in \x27$TRASH/known_wrong\x27\")
has(\"refused\", \"unreachable\", \"the agent at tcp://$A1:$P1 refused our key (ZAP); add $(cat other.key.pub) to its authorized file\")
has(\"loose\", \"unreachable\", \"readable by others (mode 640)\")
for t in (\"wrongkey\", \"refused\", \"unpinned\", \"loose\"):
    assert rows[t][\"duration_ms\"] < 1500, rows[t]
" out &&
	{ test $((end - start)) -le 8 || { echo "took $((end - start))s"; false; }; }
'

test_expect_success 'something on the port that is not an agent: named so' '
	agent_group notzmtp "connect-timeout: 2" "agent: { port: $SSH_PORT, key: $TRASH/runner.key, known-agents: $TRASH/known_ssh }" -- "sshd:$A1" >inv-n.yaml &&
	mkdir -p inv-n && mv inv-n.yaml inv-n/ &&
	echo "$A1:$SSH_PORT $(cat agent.key.pub)" >known_ssh &&
	test_exit 3 reops_run -i inv-n --json f.yaml >out 2>err &&
	json_get stderr out >got &&
	test_grep "closed the connection before the CURVE handshake: it is not a reops-agent|accepted a connection but no CURVE handshake came" got
'

test_expect_success 'the agent killed mid-command: unreachable, the others go on' '
	agent_start a3 "$A3" &&
	P3=$(sed -e "s/.*://" a3.endpoint) &&
	echo "$A3:$P3 $(cat agent.key.pub)" >known_a3 &&
	{
		agent_group g-dies "agent: { port: $P3, key: $TRASH/runner.key, known-agents: $TRASH/known_a3 }" -- "dies:$A3"
		agent_group g-lives "agent: { port: $P2, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" -- "lives:$A2" | sed -e 1d
	} >inv-k.yaml && mkdir -p inv-k && mv inv-k.yaml inv-k/ &&
	mk=$(marked_sleep mid) &&
	pipeline mid.yaml all "exec: \"echo done; $mk 5 #\${target}\"" &&
	{ "$REOPS_RUN" -i inv-k --json mid.yaml >out 2>err & pid=$!; } &&
	wait_running "sh -c echo done; $mk 5 #dies" ;
	kill -KILL "$(cat a3.agent-pid)" &&
	{ wait $pid; code=$?; } ; test $code = 3 &&
	$PY -c "
import json, sys
rows = {json.loads(l)[\"target\"]: json.loads(l) for l in open(sys.argv[1])}
assert rows[\"lives\"][\"status\"] == \"ok\" and rows[\"lives\"][\"stdout\"] == \"done\n\", rows
d = rows[\"dies\"]
assert d[\"status\"] == \"unreachable\" and d[\"code\"] == 255, d
assert \"closed the connection while running the command\" in d[\"stderr\"], d
" out &&
	test_none_left "sh -c echo done; $mk 5 #lives"
'
# What the killed agent left behind.
pkill -KILL -f "^$(marked_sleep mid) 5" 2>/dev/null

# Stage 2 on k restarts r's agent (same key, same port); stage 3 on r
# must connect again rather than use the connection that went with it.
test_expect_success 'an agent restarted between stages: the next stage reconnects' '
	agent_start a4 "$A3" &&
	P4=$(sed -e "s/.*://" a4.endpoint) &&
	echo "$A3:$P4 $(cat agent.key.pub)" >known_a4 &&
	{
		agent_group g-r "agent: { port: $P4, key: $TRASH/runner.key, known-agents: $TRASH/known_a4 }" -- "r:$A3"
		agent_group g-k "agent: { port: $P1, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" -- "k:$A1" | sed -e 1d
	} >inv-r.yaml && mkdir -p inv-r && mv inv-r.yaml inv-r/ &&
	cat >restart.sh <<-EOF &&
	sleep 0.5
	kill -TERM \$(cat $TRASH/a4.agent-pid)
	i=0; while kill -0 \$(cat $TRASH/a4.agent-pid) 2>/dev/null && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
	setsid "$REOPS_AGENT" -d -k $TRASH/agent.key -a $TRASH/authorized -l tcp://$A3:$P4 2>$TRASH/a4b.log </dev/null >/dev/null &
	echo \$! >$TRASH/a4b.pid
	i=0; until grep -q "listening on" $TRASH/a4b.log 2>/dev/null || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i + 1)); done
	EOF
	pipeline r.yaml all "exec: echo one" \
	    "exec: \"if [ \${target} = k ]; then sh $TRASH/restart.sh; fi; echo two\"" \
	    "exec: echo three" &&
	reops_run -i inv-r --json r.yaml >out 2>err ;
	rc=$? ; kill -TERM "$(cat a4b.pid)" 2>/dev/null ;
	test $rc = 0 &&
	json_get stdout out >got && printf "three\nthree\n" >want &&
	test_cmp want got &&
	test_grep "admitted runner" a4b.log
'

test_expect_success 'a request over the agent -M limit: failed, or unreachable far over' '
	agent_start a5 "$A3" -M 1024 &&
	P5=$(sed -e "s/.*://" a5.endpoint) &&
	echo "$A3:$P5 $(cat agent.key.pub)" >known_a5 &&
	agent_group g-m "agent: { port: $P5, key: $TRASH/runner.key, known-agents: $TRASH/known_a5 }" -- "m:$A3" >inv-m.yaml &&
	mkdir -p inv-m && mv inv-m.yaml inv-m/ &&
	head -c 1500 /dev/zero >small && head -c 200000 /dev/zero >large &&
	pipeline m1.yaml all "copy: { src: small, dest: $TRASH/m.small }" &&
	test_exit 1 reops_run -i inv-m --json m1.yaml >out &&
	# The request holds the file and the destination path, whose length
	# depends on where the tests run (distcheck builds deeper).
	test_grep "message too large: [0-9]+ bytes, the limit is 1024" out &&
	n=$(sed -n "s/.*message too large: \([0-9]*\) bytes.*/\1/p" out) &&
	{ test "$n" -gt 1500 && test "$n" -lt 6000 ||
	    { echo "request of $n bytes"; false; }; } &&
	pipeline m2.yaml all "copy: { src: large, dest: $TRASH/m.large }" &&
	test_exit 3 reops_run -i inv-m --json m2.yaml >out &&
	test_grep "its request was 20[0-9]{4} bytes: over the agent.s -M limit" out &&
	! test -e m.small && ! test -e m.large &&
	agent_stop a5
'
# Whatever the test above found, its agent is gone before the next one.
agent_stop a5 2>/dev/null

# Stage 2 takes our key out of the agent's authorized file and sends it
# SIGHUP; the connection stays, and stage 3's request is refused.
test_expect_success 'our key removed on SIGHUP mid-run: unreachable, named so' '
	agent_start a6 "$A3" &&
	P6=$(sed -e "s/.*://" a6.endpoint) &&
	echo "$A3:$P6 $(cat agent.key.pub)" >known_a6 &&
	agent_group g-h "agent: { port: $P6, key: $TRASH/runner.key, known-agents: $TRASH/known_a6 }" -- "hup:$A3" >inv-h.yaml &&
	mkdir -p inv-h && mv inv-h.yaml inv-h/ &&
	cp authorized authorized.bak &&
	cat >revoke.sh <<-EOF &&
	cp $TRASH/other.key.pub $TRASH/authorized
	kill -HUP \$(cat $TRASH/a6.agent-pid)
	i=0; until grep -q "SIGHUP: 1 authorized key" $TRASH/a6.log || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i + 1)); done
	EOF
	pipeline h.yaml all "exec: echo one" "exec: sh $TRASH/revoke.sh" \
	    "exec: echo three" &&
	reops_run -i inv-h --json h.yaml >out 2>err ; rc=$? ;
	cp authorized.bak authorized && agent_stop a6 &&
	test $rc = 3 &&
	test_grep "reops-run: the agent at tcp://$A3:$P6 no longer authorizes our key \(removed on SIGHUP\); add $(cat runner.key.pub | sed -e "s/[]^$.*+?(){}|[\\]/\\\\&/g") to its authorized file" out
'

test_expect_success 'fallback: ssh: an unreachable agent, the row over ssh' '
	ssh_group fb h1 h2 -- "transport: agent" "fallback: ssh" \
	    "connect-timeout: 2" \
	    "agent: { port: $P2, key: $TRASH/runner.key, known-agents: $TRASH/known_agents }" |
	    sed -e "/transport: ssh/d" >inv-fb.yaml &&
	mkdir -p inv-fb && mv inv-fb.yaml inv-fb/ &&
	pipeline fb.yaml all "exec: \"echo via-\$SSH_CONNECTION-x; exit 0\"" &&
	reops_run -i inv-fb --json fb.yaml >out 2>err &&
	json_get status out >got && printf "ok\nok\n" >want && test_cmp want got &&
	json_get stdout out >got &&
	test "$(grep -c "^via--x$" got)" = 1 &&
	test "$(grep -c "^via-127.* $SSH_PORT-x$" got)" = 1 &&
	test "$(grep -c "agent unreachable" err)" = 1 &&
	test_grep "h1: agent unreachable \(no agent key is pinned for $A1:$P2 in .*\); running it over ssh instead \(fallback: ssh\)" err
'

# Agent rows, their fallback and plain ssh rows in one stage: the ssh
# loop and the agent's run side by side, the fallback after both.
test_expect_success 'fallback: ssh beside an ssh group in the same stage' '
	mkdir -p inv-mixed && cp inv-fb/inv-fb.yaml inv-mixed/ &&
	ssh_group plain h3 >inv-mixed/plain.yaml &&
	pipeline mx.yaml all "exec: \"echo \${target}\"" "exec: \"echo again-\${target}\"" &&
	reops_run -i inv-mixed --json --forks 2 mx.yaml >out 2>err &&
	json_get stdout out >got && printf "again-h1\nagain-h2\nagain-h3\n" >want &&
	test_cmp want got &&
	test "$(grep -c "agent unreachable" err)" = 2
'

# Stage 1 finds no agent and falls back; stage 2 does at once, not after
# another connect-timeout; stage 3 (over ssh) starts an agent and pins
# its key, as enroll would; stage 4 runs over that agent.
test_expect_success 'fallback: an agent not reached is tried again only once its pin changes' '
	# A port of its own: one an agent could bind a moment ago.
	agent_start a7p "$A3" && agent_stop a7p &&
	P7=$(sed -e "s/.*://" a7p.endpoint) &&
	ssh_group g-d h3 -- "transport: agent" "fallback: ssh" \
	    "connect-timeout: 3" \
	    "agent: { port: $P7, key: $TRASH/runner.key, known-agents: $TRASH/known_d }" |
	    sed -e "/transport: ssh/d" >inv-d.yaml &&
	mkdir -p inv-d && mv inv-d.yaml inv-d/ &&
	echo "$A3:$P7 $(cat other.key.pub)" >known_d &&
	# The line goes by a file: a Z85 key may hold "$", which a script
	# would expand.
	cat >pin.sh <<-EOF &&
	setsid env -u SSH_CONNECTION "$REOPS_AGENT" -d -k $TRASH/agent.key -a $TRASH/authorized -l tcp://$A3:$P7 2>$TRASH/a7.log </dev/null >/dev/null &
	echo \$! >$TRASH/a7.pid
	i=0; until grep -q "listening on" $TRASH/a7.log 2>/dev/null || [ \$i -ge 100 ]; do sleep 0.1; i=\$((i + 1)); done
	cp $TRASH/pin.line $TRASH/known_d
	EOF
	echo "$A3:$P7 $(cat agent.key.pub)" >pin.line &&
	pipeline d.yaml all "exec: \"echo s1-\$SSH_CONNECTION-x\"" \
	    "exec: \"echo s2-\$SSH_CONNECTION-x\"" "exec: \"sh $TRASH/pin.sh\"" \
	    "exec: \"echo s4-\$SSH_CONNECTION-x\"" &&
	start=$(date +%s) &&
	reops_run -i inv-d --json d.yaml >d.out 2>d.err ; rc=$? ;
	end=$(date +%s) ; kill -TERM "$(cat a7.pid)" 2>/dev/null ;
	{ test $rc = 0 || { echo "exit $rc"; cat d.err; false; }; } &&
	json_get stdout d.out >got && echo s4--x >want && test_cmp want got &&
	grep -c "h3: agent unreachable" d.err >got && echo 3 >want &&
	test_cmp want got &&
	test_grep "admitted runner" a7.log &&
	{ test $((end - start)) -le 7 || { echo "took $((end - start))s"; false; }; }
'

test_expect_success 'fallback: ssh never reruns a command that failed' '
	pipeline fb2.yaml h2 "exec: \"echo ran >>$TRASH/ran-count; exit 5\"" &&
	test_exit 1 reops_run -i inv-fb --json fb2.yaml >out 2>err &&
	test "$(json_get code out)" = 5 &&
	test "$(wc -l <ran-count)" = 1 &&
	! grep -q "agent unreachable" err
'

test_expect_success 'the example inventory and pipeline of reops-hosts(5)' '
	mkdir -p ex/hosts.d &&
	sed -e "s|port: 7707|port: $P1|; s|127\.0\.0\.1|$A1|" \
	    "$SRCDIR/examples/agent/inventory/agents.yaml" >ex/hosts.d/agents.yaml &&
	cp runner.key ex/hosts.d/ &&
	echo "$A1:$P1 $(cat agent.key.pub)" >ex/hosts.d/known_agents &&
	(cd ex && reops_run --json "$SRCDIR/pipelines/agent-facts.yaml" \
	    >../out 2>../err) &&
	test "$(json_get status out)" = ok &&
	json_get cpus out >got && test_grep "^[0-9]+$" got &&
	test_grep "load average" out &&
	test_grep "exec .uptime." a1.log
'

test_expect_success 'the agents are still up and stop cleanly' '
	agent_stop a1 && agent_stop a2
'

ssh_done
