#!/bin/bash
# t0510: the JSON Schemas of schemas/ accept every shipped pipeline and
# inventory file, reject malformed ones that reops-run rejects too, and
# know exactly the stages of --list-stages, with their keys and types.
# Needs python3-jsonschema and python3-yaml (build-aux/packages-test.txt).
. "$SRCDIR/tests/test-lib.sh"

PIPELINE_SCHEMA="$SRCDIR/schemas/pipeline.schema.json"
HOSTS_SCHEMA="$SRCDIR/schemas/hosts.schema.json"

# Importing jsonschema costs a third of a second, so every file is checked
# in one run per schema (validate_all), and each test looks its file up:
# validate SCHEMA FILE prints the file's errors and fails if it has any,
# or if it was never checked.
cat >validate.py <<\EOF
import json, sys, yaml
from jsonschema import Draft202012Validator
v = Draft202012Validator(json.load(open(sys.argv[1])))
for f in sys.argv[2:]:
    try:
        errors = ["/".join(map(str, e.absolute_path)) + ": " + e.message[:200]
                  for e in v.iter_errors(yaml.safe_load(open(f)))]
    except (OSError, yaml.YAMLError) as e:
        errors = [str(e)]
    for e in errors:
        print("%s\terror\t%s" % (f, e.replace("\n", " ")))
    if not errors:
        print("%s\tok" % f)
EOF

validate_all () {
	schema=$1
	shift
	python3 validate.py "$schema" "$@" >"results.${schema##*/}"
}

validate () {
	awk -F "\t" -v f="$2" '$1 == f && $2 == "error" { print f ": " $3 }' \
	    "results.${1##*/}" >errors &&
	cat errors &&
	test ! -s errors &&
	awk -F "\t" -v f="$2" '$1 == f && $2 == "ok" { n++ } END { exit n != 1 }' \
	    "results.${1##*/}"
}

test_expect_success 'python3 has jsonschema and yaml' '
	python3 -c "import jsonschema, yaml"
'

test_expect_success 'both schemas are valid JSON Schema 2020-12' '
	python3 -c "
import json, sys
from jsonschema import Draft202012Validator
for f in sys.argv[1:]:
    s = json.load(open(f))
    assert s[\"\$schema\"] == \"https://json-schema.org/draft/2020-12/schema\", f
    Draft202012Validator.check_schema(s)
" "$PIPELINE_SCHEMA" "$HOSTS_SCHEMA"
'

test_expect_success 'the schema names exactly the stages of --list-stages' '
	reops_run --list-stages | grep -v "^ " | cut -d" " -f1 | sort >stages &&
	python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))
for alt in s[\"\$defs\"][\"stage\"][\"anyOf\"]:
    for name in alt.get(\"properties\", {}):
        if name not in (\"name\", \"when\", \"serial\"):
            print(name)
    # The one stage key of an item (oneOf): the same names.
    one = [r[\"required\"][0] for r in alt.get(\"oneOf\", [])]
    if \"properties\" in alt and sorted(one) != sorted(n for n in
        alt[\"properties\"] if n not in (\"name\", \"when\", \"serial\")):
        print(\"the oneOf of the stage keys differs: %s\" % one)
" "$PIPELINE_SCHEMA" | sort >schema-stages &&
	test -s stages &&
	test_cmp stages schema-stages
'

# Each stage's keys in the schema against --list-stages=json: the same
# names, a type that takes what the loader takes (string: a scalar;
# integer, boolean; strings: a scalar or a list; mapping: an object), the
# required ones required, a scalar form where there is a shorthand, and
# no bare-name form for a stage that requires a key.
cat >keys.py <<\EOF
import json, sys
schema = json.load(open(sys.argv[1]))
stages = json.load(open(sys.argv[2]))
defs = schema["$defs"]
bad = []

def resolve(s):
    while "$ref" in s:
        s = defs[s["$ref"].split("/")[-1]]
    return s

def types(s):
    s = resolve(s)
    out = set()
    t = s.get("type")
    if isinstance(t, str):
        out.add(t)
    elif isinstance(t, list):
        out.update(t)
    for alt in s.get("anyOf", []) + s.get("oneOf", []):
        out |= types(alt)
    for v in s.get("enum", []):
        out.add("string" if isinstance(v, str) else type(v).__name__)
    return out

want = {
    "string": ({"string"}, {"array", "object"}),
    "integer": ({"integer"}, {"array", "object"}),
    "boolean": ({"boolean"}, {"array", "object"}),
    "strings": ({"string", "array"}, {"object"}),
    "mapping": ({"object"}, {"array"}),
}

bare = set(resolve(defs["stage"])["anyOf"][0]["enum"])
for st in stages:
    name = st["name"]
    d = resolve(defs[name])
    objs = [resolve(a) for a in d.get("anyOf", [d])
            if resolve(a).get("type") == "object"]
    props = objs[0].get("properties", {}) if objs else {}
    required = set(objs[0].get("required", [])) if objs else set()
    keys = {k["name"]: k for k in st["keys"]}
    for k in sorted(set(props) - set(keys)):
        bad.append("%s: schema key '%s' is not a key of the stage" % (name, k))
    for k in sorted(set(keys) - set(props)):
        bad.append("%s: key '%s' is not in the schema" % (name, k))
    for k in sorted(set(keys) & set(props)):
        have = types(props[k])
        need, never = want[keys[k]["type"]]
        if not need <= have or have & never:
            bad.append("%s: key '%s' is %s, the schema takes %s" %
                (name, k, keys[k]["type"], sorted(have)))
        if keys[k]["required"] != (k in required):
            bad.append("%s: key '%s' required is %s in reops-run" %
                (name, k, keys[k]["required"]))
    if name in bare and any(k["required"] for k in st["keys"]):
        bad.append("%s: the bare name is allowed in the schema" % name)
    if st["shorthand"] is not None and not [a for a in d.get("anyOf", [])
            if resolve(a).get("type") != "object" and
            resolve(a).get("type") != "null"]:
        bad.append("%s: the shorthand '%s' has no scalar form in the schema" %
            (name, st["shorthand"]))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
EOF

test_expect_success 'the schema has each stage'\''s keys and types, no more' '
	reops_run --list-stages=json >stages.json &&
	python3 keys.py "$PIPELINE_SCHEMA" stages.json
'

test_expect_success 'a bare stage name: the schema and reops-run agree' '
	python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))
for n in s[\"\$defs\"][\"stage\"][\"anyOf\"][0][\"enum\"]:
    print(n)
" "$PIPELINE_SCHEMA" >bare &&
	python3 -c "
import json, sys
for s in json.load(open(sys.argv[1])):
    print(s[\"name\"], \"hosts: local\" if \"hosts\" in s[\"rows\"] else \"systems: all\")
" stages.json >kinds &&
	test -s bare &&
	while read -r name sel; do
		printf "%s\nstages: [ %s ]\n" "$sel" "$name" >bare.yaml &&
		if grep -q -x -F "$name" bare; then want=0; else want=2; fi &&
		test_exit $want reops_run -i "$SRCDIR/hosts.d" --check bare.yaml \
		    >/dev/null 2>err ||
		{ echo "bare $name: want exit $want"; cat err; return 1; }
	done <kinds
'

test_expect_success 'the keys check tells a key the schema lacks' '
	reops_run --list-stages=json |
	    sed -e "s/{\"name\":\"sudo\"/{\"name\":\"sudoer\"/" >more.json &&
	! python3 keys.py "$PIPELINE_SCHEMA" more.json >out &&
	test_grep "key .sudoer. is not in the schema" out
'

# Pipelines that reops-run accepts; the schema must not be stricter.
good_pipeline () {
	printf "%s\n" "$2" >"$1.yaml" && good_pipelines="$good_pipelines $1"
}
test_good_pipeline () {
	case_name=$1
	test_expect_success "schema and reops-run accept: $case_name" '
		validate "$PIPELINE_SCHEMA" "$case_name.yaml" &&
		reops_run -i "$SRCDIR/hosts.d" --check "$case_name.yaml" >/dev/null
	'
}

# Pipelines that reops-run rejects; the schema must reject them too.
bad_pipeline () {
	printf "%s\n" "$2" >"$1.yaml" && bad_pipelines="$bad_pipelines $1"
}
test_bad_pipeline () {
	case_name=$1
	test_expect_success "schema and reops-run reject: $case_name" '
		! validate "$PIPELINE_SCHEMA" "$case_name.yaml" >out &&
		test -s out &&
		test_exit 2 reops_run -i "$SRCDIR/hosts.d" --check "$case_name.yaml" \
		    2>/dev/null
	'
}

good_pipeline shorthands 'hosts: [local, "~^worker-"]
params: { t: 5, on: "false", dir: /tmp }
stages:
  - ls
  - ls: ${dir}
  - exec:
      command: uptime
      timeout: "${t}"
      sudo: ${on}
  - pick: ok
  - pick: { column: stdout, match: "up", invert: true }
  - json:
  - pretty'

good_pipeline param-forms 'hosts: local
params:
  token: { secret: true, env: T0510_UNSET_TOKEN }
  word: { value: hello, env: T0510_WORD }
  plain: { value: 5, secret: false }
stages:
  - exec: printf %s ${token} | wc -c; echo ${word} ${plain}'

good_pipeline systems-kind 'systems: all
stages:
  - pick: { status: successful }
  - json: { file: out.json }'
good_pipeline parse-forms 'hosts: local
stages:
  - exec: uptime
  - parse: "load average: (?<load1>[0-9.]+)"
  - parse: { column: load1, regex: "^(?<int>[0-9]+)", all: true, optional: false }'

good_pipeline publish-forms 'hosts: local
params: { collector: "tcp://127.0.0.1:5557", wait: 3 }
stages:
  - publish: ipc:///run/reops/collector.sock
  - publish: { to: "${collector}", topic: kernels, timeout: 3 }
  - publish: { to: "tcp://[::1]:5557", timeout: "${wait}" }'

good_pipeline stage-name 'hosts: local
stages:
  - exec: uptime
    name: check uptime
  - name: 5
    ls: { path: / }
  - name: show
    pretty:'

good_pipeline when-forms 'hosts: local
stages:
  - exec: "false"
  - exec: "echo fix"
    when: failed
    name: fix
  - exec: uptime
    when: { column: stdout, match: "^fix", invert: true }
  - exec: uptime
    when: { all: [ successful, { any: [ { status: failed }, any-status ] } ] }
  - pick: failed
  - pretty
  - exec: "echo again"
    when: failed'

good_pipeline branch-forms 'hosts: local
stages:
  - branch:
      first one:
        when: { column: target, match: "^local" }
        stages:
          - exec: uptime
          - branch:
              inner: { when: any-status, stages: [ pretty ] }
      rest:
        when: any-status
        stages: [ { exec: uname, name: kernel, when: failed } ]'

bad_pipeline when-alone 'hosts: local
stages:
  - when: failed
    name: nothing'
bad_pipeline when-unknown-status 'hosts: local
stages:
  - exec: uptime
    when: faild'
bad_pipeline when-list 'hosts: local
stages:
  - exec: uptime
    when: [ failed ]'
bad_pipeline branch-without-when 'hosts: local
stages:
  - branch:
      a: { stages: [ pretty ] }'
bad_pipeline branch-without-stages 'hosts: local
stages:
  - branch:
      a: { when: failed }'
bad_pipeline branch-empty 'hosts: local
stages:
  - branch: {}'
bad_pipeline branch-empty-stages 'hosts: local
stages:
  - branch:
      a: { when: failed, stages: [] }'

bad_pipeline stage-name-two-stages 'hosts: local
stages:
  - exec: uptime
    ls: /
    name: two'
bad_pipeline stage-name-alone 'hosts: local
stages:
  - name: alone'
bad_pipeline stage-name-list 'hosts: local
stages:
  - exec: uptime
    name: [a, b]'

good_pipeline serial-forms 'hosts: local
params: { batch: "2" }
serial: [1, "${batch}", 50%]
max-fail: 10%
stages:
  - exec: uptime
    serial: 2
    name: one at a time
  - pretty'
good_pipeline serial-number 'hosts: local
serial: 3
max-fail: 0
stages: [pretty]'
bad_pipeline serial-zero 'hosts: local
serial: 0
stages: [pretty]'
bad_pipeline serial-150-percent 'hosts: local
serial: 150%
stages: [pretty]'
bad_pipeline serial-not-a-number 'hosts: local
serial: two
stages: [pretty]'
bad_pipeline serial-empty-list 'hosts: local
serial: []
stages: [pretty]'
bad_pipeline max-fail-without-serial 'hosts: local
max-fail: 1
stages: [pretty]'
bad_pipeline max-fail-bad 'hosts: local
serial: 1
max-fail: 101%
stages: [pretty]'
bad_pipeline stage-serial-zero 'hosts: local
stages:
  - exec: uptime
    serial: 0'

bad_pipeline unknown-top-key 'hosts: local
stage: [pretty]'
bad_pipeline unknown-stage 'hosts: local
stages: [pretty, frobnicate]'
bad_pipeline exec-without-command 'hosts: local
stages:
  - exec: { sudo: true }'
bad_pipeline unknown-key 'hosts: local
stages:
  - ls: { path: /, colour: red }'
bad_pipeline two-keys-in-a-stage 'hosts: local
stages:
  - ls:
    path: /'
bad_pipeline pick-status-and-column 'hosts: local
stages:
  - pick: { status: failed, column: stdout, match: x }'
bad_pipeline pick-unknown-status 'hosts: local
stages:
  - pick: broken'
bad_pipeline parse-without-regex 'hosts: local
stages:
  - parse: { column: stdout, all: true }'
bad_pipeline publish-without-to 'hosts: local
stages:
  - publish: { topic: kernels }'
bad_pipeline publish-bind-endpoint 'hosts: local
stages:
  - publish: "tcp://*:5557"'
bad_pipeline publish-timeout-zero 'hosts: local
stages:
  - publish: { to: "tcp://127.0.0.1:5557", timeout: 0 }'
bad_pipeline pretty-with-arguments 'hosts: local
stages:
  - pretty: wide'
bad_pipeline ls-flags-for-the-shell 'hosts: local
stages:
  - ls: { flags: "-l; rm -rf /" }'
bad_pipeline timeout-not-a-number 'hosts: local
stages:
  - exec: { command: uptime, timeout: soon }'
bad_pipeline hosts-and-systems 'hosts: local
systems: all
stages: [pretty]'
bad_pipeline no-stages 'hosts: local
stages: []'
bad_pipeline bad-selector-name 'hosts: "-local"
stages: [pretty]'
bad_pipeline bad-param-name 'hosts: local
params: { 9lives: x }
stages: [pretty]'

bad_pipeline secret-with-value 'hosts: local
params: { token: { secret: true, value: inline } }
stages: [pretty]'
bad_pipeline param-unknown-key 'hosts: local
params: { token: { secrte: true } }
stages: [pretty]'
bad_pipeline param-env-not-a-name 'hosts: local
params: { token: { env: "A B" } }
stages: [pretty]'
bad_pipeline param-secret-not-boolean 'hosts: local
params: { token: { secret: "yes" } }
stages: [pretty]'

# Inventory files, each alone in a directory.
good_hosts () {
	mkdir -p "$1" && printf "%s\n" "$2" >"$1/10.yaml" &&
	good_hosts="$good_hosts $1"
}
test_good_hosts () {
	case_name=$1
	test_expect_success "schema and reops-run accept inventory: $case_name" '
		validate "$HOSTS_SCHEMA" "$case_name/10.yaml" &&
		printf "hosts: all\nstages: [pretty]\n" >all.yaml &&
		reops_run -i "$case_name" --check all.yaml >/dev/null
	'
}

bad_hosts () {
	mkdir -p "$1" && printf "%s\n" "$2" >"$1/10.yaml" &&
	bad_hosts="$bad_hosts $1"
}
test_bad_hosts () {
	case_name=$1
	test_expect_success "schema and reops-run reject inventory: $case_name" '
		! validate "$HOSTS_SCHEMA" "$case_name/10.yaml" >out &&
		test -s out &&
		printf "hosts: all\nstages: [pretty]\n" >all.yaml &&
		test_exit 2 reops_run -i "$case_name" --check all.yaml 2>/dev/null
	'
}

good_hosts every-key 'groups:
  web:
    description: web servers
    transport: ssh
    auth: { user: deploy, key: ~/.ssh/id_ed25519, port: 2222, passphrase-env: KEY_PASS, agent: true }
    host-keys: accept-new
    known-hosts: [~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts]
    timeout: 60
    connect-timeout: 5
    hosts:
      - web-1
      - { name: web-2, address: 127.0.0.2, port: 2200, user: admin }
  one:
    transport: local
    hosts: solo
types:
  empty:
  web:
    provision: ../pipelines/demo.yaml
    auth: { user: root }
    cloud-init: true
    description: web machines
systems:
  vm-1:
    type: web
    description: a test machine
    hypervisor: { uri: "test:///default", pool: default-pool, network: default }
    machine: { cpu: 2, ram: 1024, disk: 10, image: base.img, os: debian-12, user: root, hostname: vm-1, ip: 127.0.0.9 }'

bad_hosts unknown-transport 'groups:
  web: { transport: carrier-pigeon, hosts: [a] }'
bad_hosts group-without-hosts 'groups:
  web: { transport: local }'
bad_hosts port-out-of-range 'groups:
  web: { hosts: [ { name: a, port: 70000 } ] }'
bad_hosts host-without-name 'groups:
  web: { hosts: [ { address: 127.0.0.1 } ] }'
bad_hosts bad-host-name 'groups:
  web: { transport: local, hosts: [ "-rf" ] }'
bad_hosts unknown-top-key 'hosts:
  web: { hosts: [a] }'
bad_hosts system-without-hypervisor 'types: { t: }
systems:
  vm: { type: t, machine: { cpu: 1 } }'
bad_hosts machine-unknown-key 'types: { t: }
systems:
  vm: { type: t, hypervisor: { uri: "test:///default" }, machine: { gpu: 1 } }'
bad_hosts ram-too-small 'types: { t: }
systems:
  vm: { type: t, hypervisor: { uri: "test:///default" }, machine: { ram: 1 } }'

shipped_pipelines=$(cd "$SRCDIR" && find pipelines -name "*.yaml" -o \
    -name "*.yml" | sort)
shipped_hosts=$(cd "$SRCDIR" && ls hosts.d/*.yaml hosts.d/*.yml 2>/dev/null)
validate_all "$PIPELINE_SCHEMA" $(for f in $shipped_pipelines; do
	echo "$SRCDIR/$f"; done) $(for c in $good_pipelines $bad_pipelines; do
	echo "$c.yaml"; done)
validate_all "$HOSTS_SCHEMA" $(for f in $shipped_hosts; do
	echo "$SRCDIR/$f"; done) $(for c in $good_hosts $bad_hosts; do
	echo "$c/10.yaml"; done)

for f in $shipped_pipelines; do
	test_expect_success "$f is valid against pipeline.schema.json" '
		validate "$PIPELINE_SCHEMA" "$SRCDIR/$f"
	'
done
for f in $shipped_hosts; do
	test_expect_success "$f is valid against hosts.schema.json" '
		validate "$HOSTS_SCHEMA" "$SRCDIR/$f"
	'
done
for c in $good_pipelines; do test_good_pipeline "$c"; done
for c in $bad_pipelines; do test_bad_pipeline "$c"; done
for c in $good_hosts; do test_good_hosts "$c"; done
for c in $bad_hosts; do test_bad_hosts "$c"; done

test_done
