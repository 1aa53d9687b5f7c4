#!/bin/bash
# t0520: the README's examples are real: the pipeline it shows is the
# shipped file, and each command it shows runs.
. "$SRCDIR/tests/test-lib.sh"

test_expect_success 'the README opens with the two commands, in a code block' '
	sed -n "3,6p" "$SRCDIR/README.md" >got &&
	printf "%s\n" "\`\`\`sh" \
		"build-aux/setup && ./reops-run pipelines/demo.yaml" \
		"build-aux/setup --enable-sanitizers && make -j2 check" "\`\`\`" >want &&
	test_cmp want got
'

test_expect_success '.ci/run runs the second of them' '
	test_grep "^build-aux/setup --enable-sanitizers && make -j2 check" "$SRCDIR/.ci/run"
'

test_expect_success 'the pipeline the README shows is pipelines/demo.yaml' '
	sed -n "/^# pipelines\/demo.yaml$/,/^\`\`\`$/p" "$SRCDIR/README.md" |
		sed -e 1d -e "\$d" >shown &&
	grep -v "^#" "$SRCDIR/pipelines/demo.yaml" >file &&
	test_cmp file shown
'

test_expect_success 'every command of the README console block runs' '
	mkdir -p work &&
	cp -r "$SRCDIR/pipelines" "$SRCDIR/hosts.d" work/ &&
	ln -s "$REOPS_RUN" work/reops-run &&
	sed -n "/^\`\`\`console$/,/^\`\`\`$/p" "$SRCDIR/README.md" |
		sed -n "s/^\\$ //p" >commands.shown &&
	: the lifecycle writes its JSON here, not into /tmp &&
	sed -e "s#out=/tmp#out=.#" commands.shown >commands &&
	test "$(wc -l <commands)" -ge 4 &&
	(cd work && while read -r line; do
		sh -c "$line" >/dev/null || { echo "failed: $line"; exit 1; }
	done <../commands) &&
	test -s work/table.json
'

test_done
