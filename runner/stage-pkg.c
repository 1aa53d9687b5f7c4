/*
 * stage-pkg.c: "pkg" updates the package lists, upgrades, and installs a
 * list of packages with whatever manager the host has: apt-get, dnf or
 * apk, detected on the host. Never interactive: a prompt on a remote host
 * would hang the row until its deadline. The manager found is a column.
 */
#include <stdlib.h>
#include <string.h>

#include "run.h"

static const struct stage_key pkg_keys[] = {
	{ "install", ARG_STRINGS, 0 },
	{ "update", ARG_BOOL, 0 },
	{ "upgrade", ARG_BOOL, 0 },
	{ "dry-run", ARG_BOOL, 0 },
	{ "sudo", ARG_BOOL, 0 },
	{ "timeout", ARG_INT, 0 },
	{ NULL, 0, 0 }
};

#define MANAGER_LINE	"manager="

/* Package names as the three managers spell them: no shell, no options. */
static int
valid_package(const char *s)
{
	const char	*p;

	if (*s == '\0' || *s == '-')
		return 0;
	for (p = s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("._+:~=-<>", *p) != NULL)
			continue;
		return 0;
	}
	return 1;
}

static int
pkg_prepare(struct stage *st, struct err *e)
{
	const struct node	*v;
	size_t			 i;

	if ((v = stage_arg(st, "install")) == NULL)
		return 0;
	/* A name made of row values is checked on each row. */
	if (v->type == NODE_SCALAR) {
		if (!has_row_value(v->str) && !valid_package(v->str))
			return node_err(e, v, "invalid package name '%s'",
			    v->str);
		return 0;
	}
	for (i = 0; i < v->nkids; i++)
		if (!has_row_value(v->kids[i]->str) &&
		    !valid_package(v->kids[i]->str))
			return node_err(e, v->kids[i], "invalid package name "
			    "'%s'", v->kids[i]->str);
	return 0;
}

/* One package, row values in; a name they make invalid fails the row. */
static int
add_package(struct buf *s, const char *tmpl, const struct row *r,
    struct buf *why)
{
	struct buf	name;
	int		ret = 0;

	buf_init(&name);
	if (expand_row(&name, tmpl, r, EXPAND_TEXT, why) != 0)
		ret = -1;
	else if (!valid_package(name.data != NULL ? name.data : "")) {
		buf_printf(why, "'%s' makes an invalid package name", tmpl);
		ret = -1;
	} else {
		buf_addc(s, ' ');
		shell_quote(s, name.data);
	}
	buf_free(&name);
	return ret;
}

static int
add_packages(struct buf *s, const struct stage *st, const struct row *r,
    struct buf *why)
{
	const struct node	*v;
	size_t			 i;

	if ((v = stage_arg(st, "install")) == NULL)
		return 0;
	if (v->type == NODE_SCALAR)
		return add_package(s, v->str, r, why);
	for (i = 0; i < v->nkids; i++)
		if (add_package(s, v->kids[i]->str, r, why) != 0)
			return -1;
	return 0;
}

static int
has_install(const struct stage *st)
{
	const struct node	*v;

	v = stage_arg(st, "install");
	return v != NULL && (v->type == NODE_SCALAR || v->nkids > 0);
}

/*
 * dry-run asks each manager what it would do (apt-get -s, dnf's test
 * transaction, apk --simulate) and skips refreshing the lists.
 */
static int
pkg_command(struct buf *cmd, struct stage *st, const struct row *r,
    struct buf *why)
{
	struct buf	s;
	int		update = stage_bool(st, "update", 0);
	int		upgrade = stage_bool(st, "upgrade", 0);
	int		dry = stage_bool(st, "dry-run", 0);
	int		install = has_install(st);

	buf_init(&s);
	buf_adds(&s, "set -e; DEBIAN_FRONTEND=noninteractive; "
	    "export DEBIAN_FRONTEND; "
	    "if command -v apt-get >/dev/null 2>&1; then m=apt-get; "
	    "elif command -v dnf >/dev/null 2>&1; then m=dnf; "
	    "elif command -v apk >/dev/null 2>&1; then m=apk; "
	    "else echo 'no apt-get, dnf or apk on this host' >&2; exit 127; "
	    "fi; echo \"" MANAGER_LINE "$m\"; case $m in ");
	buf_adds(&s, "apt-get) o='-q -y -o Dpkg::Options::=--force-confdef "
	    "-o Dpkg::Options::=--force-confold'; ");
	if (dry)
		buf_adds(&s, "o=\"$o -s\"; ");
	if (update && !dry)
		buf_adds(&s, "apt-get -q -y update; ");
	if (upgrade)
		buf_adds(&s, "apt-get $o upgrade; ");
	if (install) {
		buf_adds(&s, "apt-get $o install --");
		if (add_packages(&s, st, r, why) != 0)
			goto bad;
		buf_adds(&s, "; ");
	}
	buf_adds(&s, ":;; dnf) o='-q -y'; ");
	if (dry)
		buf_adds(&s, "o=\"$o --setopt=tsflags=test\"; ");
	if (update && !dry)
		buf_adds(&s, "dnf -q -y makecache; ");
	if (upgrade)
		buf_adds(&s, "dnf $o upgrade; ");
	if (install) {
		buf_adds(&s, "dnf $o install --");
		if (add_packages(&s, st, r, why) != 0)
			goto bad;
		buf_adds(&s, "; ");
	}
	buf_adds(&s, ":;; apk) o='-q --no-progress'; ");
	if (dry)
		buf_adds(&s, "o=\"$o --simulate\"; ");
	if (update && !dry)
		buf_adds(&s, "apk update -q; ");
	if (upgrade)
		buf_adds(&s, "apk $o upgrade; ");
	if (install) {
		buf_adds(&s, "apk $o add --");
		if (add_packages(&s, st, r, why) != 0)
			goto bad;
		buf_adds(&s, "; ");
	}
	buf_adds(&s, ":;; esac");
	if (stage_bool(st, "sudo", 0)) {
		buf_adds(cmd, "sudo -n -- /bin/sh -c ");
		shell_quote(cmd, s.data);
	} else
		buf_add(cmd, s.data, s.len);
	buf_free(&s);
	return 0;
bad:
	buf_free(&s);
	return -1;
}

/* The first line names the manager: a column, not part of stdout. */
static void
take_manager(struct table *t, struct row *r)
{
	const char	*nl;
	size_t		 len, skip;

	if (r->out.len < sizeof MANAGER_LINE - 1 || memcmp(r->out.data,
	    MANAGER_LINE, sizeof MANAGER_LINE - 1) != 0)
		return;
	nl = memchr(r->out.data, '\n', r->out.len);
	len = (nl != NULL ? (size_t)(nl - r->out.data) : r->out.len) -
	    (sizeof MANAGER_LINE - 1);
	row_set(t, r, "manager", r->out.data + sizeof MANAGER_LINE - 1, len);
	skip = nl != NULL ? (size_t)(nl - r->out.data) + 1 : r->out.len;
	memmove(r->out.data, r->out.data + skip, r->out.len - skip);
	r->out.len -= skip;
	r->out.data[r->out.len] = '\0';
}

static void
pkg_answer(struct job *j)
{
	if (j->row->status != ST_UNREACHABLE)
		take_manager(j->table, j->row);
}

static int
pkg_host(struct run *run, struct stage *st, struct table *t)
{
	return run_commands(run, st, t, pkg_command, pkg_answer);
}

static const char *const pkg_row_keys[] = { "install", NULL };

static const char *const pkg_columns[] = { "manager", NULL };

const struct stage_entry stage_pkg_entry = {
	.name = "pkg",
	.usage = "pkg: { update: BOOL, upgrade: BOOL, install: [PACKAGE, ...], "
	    "dry-run: BOOL, sudo: BOOL, timeout: SECONDS }",
	.summary = "update, upgrade, install packages (apt-get, dnf or apk)",
	.shorthand = "install",
	.keys = pkg_keys,
	.row_keys = pkg_row_keys,
	.prepare = pkg_prepare,
	.columns = pkg_columns,
	.flags = STAGE_REMOTE,
	.host = pkg_host,
};
