/*
 * reops-run.c: the command. Loads the inventory and every pipeline, checks
 * everything before running anything, then runs the pipelines in order and
 * turns what happened to the rows into the exit status.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "retry.h"
#include "run.h"
#include "search.h"
#include "secret.h"
#include "ssh.h"

static const char usage_text[] =
"usage: reops-run [-qvy] [--check] [--graph] [--json] [--color=when]\n"
"                 [-F ssh_config] [-f forks] [-i dir] [-l pattern]\n"
"                 [-t seconds] [--retry table] [--set name=value]\n"
"                 [--set-file name=file] [--shard i/n] pipeline ...\n"
"       reops-run --list-stages[=json]\n"
"       reops-run --version\n";

enum {
	OPT_CHECK = 256,
	OPT_COLOR,
	OPT_GRAPH,
	OPT_JSON,
	OPT_LIST_STAGES,
	OPT_RETRY,
	OPT_SET,
	OPT_SET_FILE,
	OPT_SHARD,
	OPT_VERSION,
	OPT_HELP
};

static const struct option long_options[] = {
	{ "check", no_argument, NULL, OPT_CHECK },
	{ "color", required_argument, NULL, OPT_COLOR },
	{ "forks", required_argument, NULL, 'f' },
	{ "graph", no_argument, NULL, OPT_GRAPH },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "inventory", required_argument, NULL, 'i' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "limit", required_argument, NULL, 'l' },
	{ "list-stages", optional_argument, NULL, OPT_LIST_STAGES },
	{ "quiet", no_argument, NULL, 'q' },
	{ "retry", required_argument, NULL, OPT_RETRY },
	{ "set", required_argument, NULL, OPT_SET },
	{ "set-file", required_argument, NULL, OPT_SET_FILE },
	{ "shard", required_argument, NULL, OPT_SHARD },
	{ "timeout", required_argument, NULL, 't' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "yes", no_argument, NULL, 'y' },
	{ NULL, 0, NULL, 0 }
};

static pthread_t	main_thread;

/*
 * SIGINT, SIGTERM and SIGHUP all stop the run the same way; the first one
 * names the exit status (128 + its number). A signal that lands on another
 * thread is passed on to the main one, whose poll it must interrupt.
 */
static void
on_interrupt(int sig)
{
	int	saved = errno;

	if (run_interrupted == 0)
		run_interrupted = sig;
	if (!pthread_equal(pthread_self(), main_thread))
		pthread_kill(main_thread, sig);
	errno = saved;
}

/*
 * Started with 0, 1 or 2 closed, the next file opened would take its
 * place: the table would go into it, and a child's dup2(fd, 1) would keep
 * the pipe close-on-exec. /dev/null stands in, as OpenSSH does.
 */
static void
sanitise_stdfd(void)
{
	int	fd;

	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		/* Without /dev/null there is nowhere to say so, either. */
		if (open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) == -1)
			_exit(EXIT_INTERNAL);
	}
}

/* Standard output is a pipe whose reader has gone ("| head -1"). */
static int
stdout_gone(void)
{
	struct pollfd	pfd;
	struct stat	sb;

	if (fstat(STDOUT_FILENO, &sb) != 0 || !S_ISFIFO(sb.st_mode))
		return 0;
	pfd.fd = STDOUT_FILENO;
	pfd.events = 0;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR) != 0;
}

/*
 * The end of every path that may have written to stdout: what could not
 * be written shows now, and decides the exit status with the rest (see
 * EXIT STATUS in reops-run(1)).
 */
static int
finish(struct run *run, int status)
{
	print_done(run, stdout);
	if (fclose(stdout) != 0 && run->output_error == 0) {
		if (errno == EPIPE)
			run_interrupted = SIGPIPE;
		else
			fprintf(stderr, "reops-run: standard output: %s\n",
			    strerror(errno));
		run->output_error |= 1;
	}
	if (status == EXIT_USAGE)
		return status;
	if (run_interrupted)
		return 128 + run_interrupted;
	if (run->output_error)
		return EXIT_INTERNAL;
	return status;
}

static int __attribute__((format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list	ap;

	fputs("reops-run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int
number(const char *s, int lo, int hi, int *out)
{
	char		*end;
	long		 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* I/N for --shard: 1 <= I <= N. */
static int
shard_parse(const char *s, unsigned *index, unsigned *count)
{
	const char	*slash;
	char		*first;
	int		 i, n, r;

	if ((slash = strchr(s, '/')) == NULL)
		return -1;
	first = xstrndup(s, (size_t)(slash - s));
	r = number(first, 1, 1000000, &i);
	free(first);
	if (r != 0 || number(slash + 1, 1, 1000000, &n) != 0 || i > n)
		return -1;
	*index = (unsigned)i;
	*count = (unsigned)n;
	return 0;
}

/* The name JSON rows carry: "pipeline:", else the file's base name. */
static char *
pipeline_label(const struct pipeline *p)
{
	const char	*base, *dot;

	if (p->name != NULL)
		return xstrdup(p->name);
	base = strrchr(p->file, '/') != NULL ? strrchr(p->file, '/') + 1 :
	    p->file;
	if ((dot = strrchr(base, '.')) != NULL && dot != base &&
	    (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0))
		return xstrndup(base, (size_t)(dot - base));
	return xstrdup(base);
}

/* An error may quote what a file or a host said: secrets are masked. */
static void
print_error(const struct err *e)
{
	struct buf	b;

	buf_init(&b);
	buf_printf(&b, "%s%s\n", e->located ? "" : "reops-run: ", e->msg);
	secret_mask_buf(&b);
	fputs(b.data, stderr);
	buf_free(&b);
}

/* --set NAME=VALUE and --set-file NAME=FILE; the values are ours to free. */
static int
add_override(struct overrides *ov, const char *opt, const char *arg)
{
	struct err	 e;
	const char	*eq;
	char		*value;

	if ((eq = strchr(arg, '=')) == NULL || eq == arg)
		return usage_error("%s takes name=%s, not '%s'", opt,
		    strcmp(opt, "--set") == 0 ? "value" : "file", arg);
	if (strcmp(opt, "--set") == 0)
		value = xstrdup(eq + 1);
	else if (secret_read_file(eq + 1, &value, &e) != 0) {
		fprintf(stderr, "reops-run: --set-file %.*s: %s\n",
		    (int)(eq - arg), arg, e.msg);
		return EXIT_USAGE;
	}
	ov->keys = xgrow(ov->keys, ov->n, sizeof *ov->keys);
	ov->values = xgrow(ov->values, ov->n, sizeof *ov->values);
	ov->keys[ov->n] = xstrndup(arg, (size_t)(eq - arg));
	ov->values[ov->n] = value;
	ov->n++;
	return 0;
}

static void
list_stages(void)
{
	const struct stage_entry	*ent;
	size_t				 i;

	for (i = 0; i < stage_count; i++) {
		ent = stage_table[i];
		printf("%-10s %-13s %s\n", ent->name,
		    ent->host != NULL && ent->system != NULL ? "hosts,systems" :
		    ent->host != NULL ? "hosts" : "systems", ent->summary);
		printf("%-10s %-13s %s\n", "", "", ent->usage);
	}
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
json_strs(const char *const *v)
{
	size_t	i;

	putchar('[');
	for (i = 0; v != NULL && v[i] != NULL; i++) {
		if (i > 0)
			putchar(',');
		json_str(v[i]);
	}
	putchar(']');
}

/*
 * --list-stages=json: one JSON array, one object per stage in table
 * order, one stage a line. See reops-run(1).
 */
static void
list_stages_json(void)
{
	static const char *const types[] = { "string", "integer", "boolean",
	    "strings", "mapping" };
	const struct stage_entry	*ent;
	const struct stage_key		*k;
	const char			*rows[3], *flags[4];
	size_t				 i, n;

	putchar('[');
	for (i = 0; i < stage_count; i++) {
		ent = stage_table[i];
		printf("%s\n{\"name\":", i > 0 ? "," : "");
		json_str(ent->name);
		printf(",\"summary\":");
		json_str(ent->summary);
		printf(",\"usage\":");
		json_str(ent->usage);
		n = 0;
		if (ent->host != NULL)
			rows[n++] = "hosts";
		if (ent->system != NULL)
			rows[n++] = "systems";
		rows[n] = NULL;
		printf(",\"rows\":");
		json_strs(rows);
		n = 0;
		if (ent->flags & STAGE_REMOTE)
			flags[n++] = "remote";
		if (ent->flags & STAGE_DESTRUCTIVE)
			flags[n++] = "destructive";
		if (ent->flags & STAGE_OUTPUT)
			flags[n++] = "output";
		flags[n] = NULL;
		printf(",\"flags\":");
		json_strs(flags);
		printf(",\"shorthand\":");
		if (ent->shorthand != NULL)
			json_str(ent->shorthand);
		else
			printf("null");
		printf(",\"keys\":[");
		for (k = ent->keys; k != NULL && k->name != NULL; k++) {
			printf("%s{\"name\":", k != ent->keys ? "," : "");
			json_str(k->name);
			printf(",\"type\":\"%s\",\"required\":%s}",
			    types[k->type], k->required ? "true" : "false");
		}
		printf("],\"columns\":");
		json_strs(ent->columns);
		printf(",\"columns_from_args\":%s}",
		    ent->arg_columns != NULL ? "true" : "false");
	}
	printf("\n]\n");
}

static struct table *
initial_table(const struct target *t, size_t n)
{
	struct table	*tab;
	struct row	*r;
	size_t		 i;

	tab = table_new();
	for (i = 0; i < n; i++) {
		if (t[i].host != NULL) {
			r = table_add(tab, t[i].host->name, ROW_HOST,
			    t[i].host->group->name);
			r->host = t[i].host;
		} else {
			r = table_add(tab, t[i].system->name, ROW_SYSTEM,
			    t[i].system->type->name);
			r->system = t[i].system;
		}
	}
	return tab;
}

static int
has_output_stage(const struct pipeline *p)
{
	size_t	i, j;

	for (i = 0; i < p->nstages; i++) {
		if (p->stages[i].entry->flags & STAGE_OUTPUT)
			return 1;
		for (j = 0; j < p->stages[i].nsubs; j++)
			if (has_output_stage(p->stages[i].subs[j].p))
				return 1;
	}
	return 0;
}

static int
confirm(const struct pipeline *p, size_t n, const struct options *opt)
{
	char	answer[16];

	if (opt->yes || !pipeline_destructive(p))
		return 0;
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "reops-run: %s: destructive stages need --yes "
		    "when standard input is not a terminal\n", p->file);
		return -1;
	}
	fprintf(stderr, "%s changes or destroys %zu target%s; go on? [y/N] ",
	    p->file, n, n == 1 ? "" : "s");
	if (fgets(answer, sizeof answer, stdin) == NULL ||
	    (answer[0] != 'y' && answer[0] != 'Y')) {
		fprintf(stderr, "reops-run: not confirmed; nothing was run\n");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct options		 opt;
	struct overrides	 ov;
	struct inventory	*inv = NULL;
	struct pipeline		**pl = NULL;
	struct target		**targets = NULL;
	size_t			*ntargets = NULL;
	struct selector		 limit;
	struct retry		*retry = NULL;
	char			**labels = NULL;
	unsigned char		*skip = NULL;
	const char		*retry_file = NULL;
	unsigned		 shard_i = 0, shard_n = 0;
	size_t			 nskip = 0;
	struct run		 run;
	struct table		*t;
	struct err		 e;
	struct sigaction	 sa;
	struct stat		 sb;
	const char		*nc;
	int			 ch, npl = 0, i, status = EXIT_OK, have_limit = 0;
	int			 graph = 0;
	size_t			 k;

	sanitise_stdfd();
	memset(&opt, 0, sizeof opt);
	memset(&ov, 0, sizeof ov);
	memset(&run, 0, sizeof run);
	opt.forks = DEFAULT_FORKS;
	opt.color = COLOR_AUTO;
	signal(SIGPIPE, SIG_IGN);

	while ((ch = getopt_long(argc, argv, "F:f:i:l:qt:vy", long_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'F':
			opt.ssh_config = optarg;
			break;
		case 'f':
			if (number(optarg, 1, 10000, &opt.forks) != 0)
				return usage_error("--forks takes a number from "
				    "1 to 10000, not '%s'", optarg);
			break;
		case 'i':
			opt.inventory = optarg;
			break;
		case 'l':
			opt.limit = optarg;
			break;
		case 'q':
			log_level--;
			break;
		case 't':
			if (number(optarg, 0, 86400 * 7, &opt.timeout) != 0)
				return usage_error("--timeout takes seconds "
				    "from 0 (none) to 604800, not '%s'",
				    optarg);
			break;
		case 'v':
			log_level++;
			break;
		case 'y':
			opt.yes = 1;
			break;
		case OPT_CHECK:
			opt.check = 1;
			break;
		case OPT_GRAPH:
			graph = 1;
			break;
		case OPT_COLOR:
			if (strcmp(optarg, "auto") == 0)
				opt.color = COLOR_AUTO;
			else if (strcmp(optarg, "always") == 0)
				opt.color = COLOR_ALWAYS;
			else if (strcmp(optarg, "never") == 0)
				opt.color = COLOR_NEVER;
			else
				return usage_error("--color takes always, never "
				    "or auto, not '%s'", optarg);
			break;
		case OPT_JSON:
			opt.json = 1;
			break;
		case OPT_LIST_STAGES:
			if (optarg != NULL && strcmp(optarg, "json") != 0)
				return usage_error("--list-stages takes json or "
				    "nothing, not '%s'", optarg);
			if (optarg != NULL)
				list_stages_json();
			else
				list_stages();
			return finish(&run, EXIT_OK);
		case OPT_RETRY:
			retry_file = optarg;
			break;
		case OPT_SHARD:
			if (shard_parse(optarg, &shard_i, &shard_n) != 0)
				return usage_error("--shard takes I/N with 1 <= "
				    "I <= N <= 1000000, not '%s'", optarg);
			break;
		case OPT_SET:
		case OPT_SET_FILE:
			if (add_override(&ov, ch == OPT_SET ? "--set" :
			    "--set-file", optarg) != 0) {
				status = EXIT_USAGE;
				goto out;
			}
			break;
		case OPT_VERSION:
			printf("reops-run %s\n", PACKAGE_VERSION);
			if (log_level > 0)
				pipeline_search_print(stdout);
			return finish(&run, EXIT_OK);
		case OPT_HELP:
			fputs(usage_text, stdout);
			return finish(&run, EXIT_OK);
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		status = usage_error("%s", "no pipeline given");
		goto out;
	}
	if (opt.ssh_config != NULL && access(opt.ssh_config, R_OK) != 0) {
		status = usage_error("unable to read ssh config '%s': %s",
		    opt.ssh_config, strerror(errno));
		goto out;
	}
	ov.used = xcalloc(ov.n + 1, 1);
	ov.check = opt.check || graph;

	/* Load and check everything first: nothing runs on bad input. */
	if (graph)
		ch = 0;		/* the graph is the files' alone */
	else if (opt.inventory != NULL)
		ch = inventory_load(opt.inventory, &inv, &e);
	else if (stat("hosts.d", &sb) == 0 && S_ISDIR(sb.st_mode))
		ch = inventory_load("hosts.d", &inv, &e);
	else
		ch = inventory_load_default(&inv, &e);
	if (ch != 0) {
		print_error(&e);
		status = EXIT_USAGE;
		goto out;
	}
	if (opt.limit != NULL) {
		have_limit = 1;
		if (selector_parse_limit(opt.limit, &limit, &e) != 0) {
			print_error(&e);
			status = EXIT_USAGE;
			goto out;
		}
	}
	pl = xcalloc((size_t)argc, sizeof *pl);
	targets = xcalloc((size_t)argc, sizeof *targets);
	ntargets = xcalloc((size_t)argc, sizeof *ntargets);
	for (npl = 0; npl < argc; npl++) {
		if (pipeline_load(argv[npl], &ov, &pl[npl], &e) != 0) {
			print_error(&e);
			status = EXIT_USAGE;
			goto out;
		}
	}
	for (k = 0; k < ov.n; k++) {
		if (!ov.used[k]) {
			fprintf(stderr, "reops-run: --set %s: no pipeline "
			    "declares or uses parameter '%s'\n", ov.keys[k],
			    ov.keys[k]);
			status = EXIT_USAGE;
			goto out;
		}
	}
	if (graph) {
		print_graph(stdout, pl, (size_t)npl);
		goto out;
	}
	for (i = 0; i < npl; i++) {
		if (selector_resolve(&pl[i]->sel, have_limit ? &limit : NULL,
		    inv, &targets[i], &ntargets[i], &e) != 0) {
			print_error(&e);
			status = EXIT_USAGE;
			goto out;
		}
	}
	/* --shard and --retry narrow what the selectors chose. */
	labels = xcalloc((size_t)npl, sizeof *labels);
	skip = xcalloc((size_t)npl, 1);
	for (i = 0; i < npl; i++)
		labels[i] = pipeline_label(pl[i]);
	if (retry_file != NULL && (retry_load(retry_file, &retry, &e) != 0 ||
	    retry_check(retry, (const char *const *)labels, (size_t)npl,
	    &e) != 0)) {
		print_error(&e);
		status = EXIT_USAGE;
		goto out;
	}
	for (i = 0; i < npl; i++) {
		if (shard_n > 0) {
			selector_shard(targets[i], &ntargets[i], shard_i,
			    shard_n);
			if (ntargets[i] == 0) {
				if (log_level >= 0)
					fprintf(stderr, "reops-run: shard %u/%u "
					    "holds none of the targets of '%s'\n",
					    shard_i, shard_n, labels[i]);
				skip[i] = 1;
				nskip++;
				continue;
			}
		}
		if (retry != NULL) {
			retry_filter(retry, labels[i], targets[i],
			    &ntargets[i]);
			if (ntargets[i] == 0) {
				if (log_level >= 0)
					fprintf(stderr, "reops-run: nothing to "
					    "retry: no target of '%s' failed, "
					    "was unreachable or skipped in "
					    "'%s'\n", labels[i], retry_file);
				skip[i] = 1;
				nskip++;
			}
		}
	}
	if (nskip == (size_t)npl && !opt.check)
		goto out;
	for (i = 0; i < npl; i++) {
		if (stages_preload(&run, pl[i], targets[i], ntargets[i],
		    &e) != 0) {
			print_error(&e);
			status = EXIT_USAGE;
			goto out;
		}
	}
	if (opt.check) {
		for (i = 0; i < npl; i++)
			print_plan(stdout, pl[i], targets[i], ntargets[i],
			    pl[i]->kind == SEL_SYSTEMS);
		goto out;
	}
	for (i = 0; i < npl; i++) {
		if (!skip[i] && confirm(pl[i], ntargets[i], &opt) != 0) {
			status = EXIT_USAGE;
			goto out;
		}
	}

	run.opt = &opt;
	run.inv = inv;
	run.out = opt.json ? stderr : stdout;
	run.tty = isatty(fileno(run.out));
	nc = getenv("NO_COLOR");
	run.color = opt.color == COLOR_ALWAYS || (opt.color == COLOR_AUTO &&
	    run.tty && (nc == NULL || *nc == '\0'));
	memset(&sa, 0, sizeof sa);
	main_thread = pthread_self();
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	nc = getenv("TERM");
	run.progress = progress_new(isatty(STDERR_FILENO) && log_level >= 0 &&
	    (nc == NULL || strcmp(nc, "dumb") != 0), log_level >= 1);

	for (i = 0; i < npl && !run_interrupted; i++) {
		if (skip[i])
			continue;
		if (stdout_gone()) {
			run_interrupted = SIGPIPE;
			break;
		}
		t = initial_table(targets[i], ntargets[i]);
		t->pipeline = labels[i];
		if (run_pipeline(&run, pl[i], t) != 0)
			status = EXIT_INTERNAL;
		if (run_interrupted == SIGPIPE) {
			/* Whoever reads our output went away: so do we. */
		} else if (run_interrupted) {
			/* The rows so far, for the person who pressed ^C. */
			print_pretty(&run, run.out, t);
		} else if (!opt.json && !has_output_stage(pl[i]) &&
		    log_level >= 0) {
			print_failures(stderr, t);
			print_done(&run, stderr);
		}
		if (opt.json && run_interrupted != SIGPIPE) {
			for (k = 0; k < t->n; k++)
				print_json_row(stdout, t, t->rows[k]);
			print_done(&run, stdout);
		}
		table_free(t);
	}
	if (status == EXIT_OK && run.undelivered)
		status = EXIT_UNDELIVERED;
	else if (status == EXIT_OK && run.saw_failed)
		status = EXIT_FAILED;
	else if (status == EXIT_OK && run.saw_unreachable)
		status = EXIT_UNREACH;
out:
	progress_free(run.progress);
	stages_free_run(&run);
	virt_close(&run);
	transport_close_all(&run);
	for (i = 0; i < npl; i++) {
		pipeline_free(pl[i]);
		free(targets[i]);
	}
	for (i = 0; labels != NULL && i < npl; i++)
		free(labels[i]);
	free(labels);
	free(skip);
	retry_free(retry);
	free(pl);
	free(targets);
	free(ntargets);
	if (have_limit)
		selector_free(&limit);
	inventory_free(inv);
	for (k = 0; k < ov.n; k++) {
		free(ov.keys[k]);
		explicit_bzero(ov.values[k], strlen(ov.values[k]));
		free(ov.values[k]);
	}
	secret_clear();
	free(ov.keys);
	free(ov.values);
	free(ov.used);
	return finish(&run, status);
}
