/*
 * reops-agent.c: main of reops-agent(8), the program reops-run talks to
 * over CurveZMQ instead of ssh. Options, key generation and logging live
 * here; the serving loop is agent-serve.c.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <zmq.h>

#include "agent.h"

static const char usage_text[] =
"usage: reops-agent -k keyfile -a authorized [-d] [-j jobs] [-l endpoint]...\n"
"                   [-M bytes]\n"
"       reops-agent --keygen prefix\n"
"       reops-agent --version\n";

static int	foreground = 1;		/* until daemon(3) */

void
agent_log(int prio, const char *fmt, ...)
{
	va_list	ap;
	char	msg[2048];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (foreground)
		fprintf(stderr, "reops-agent: %s\n", msg);
	else
		syslog(prio, "%s", msg);
}

char *
agent_printable(const void *data, size_t len, size_t max)
{
	const unsigned char	*p = data;
	struct buf		 b;
	size_t			 i;

	buf_init(&b);
	for (i = 0; i < len && b.len < max; i++) {
		if (p[i] == '\\')
			buf_adds(&b, "\\\\");
		else if (isprint(p[i]) && p[i] < 0x7f)
			buf_addc(&b, (char)p[i]);
		else
			buf_printf(&b, "\\x%02x", p[i]);
	}
	if (i < len)
		buf_adds(&b, "...");
	return buf_steal(&b);
}

static int
write_key(const char *path, const char *key, mode_t mode)
{
	int	fd;
	char	line[AGENT_KEY_LEN + 2];

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode)) == -1) {
		fprintf(stderr, "reops-agent: unable to create '%s': %s\n",
		    path, strerror(errno));
		return -1;
	}
	snprintf(line, sizeof line, "%s\n", key);
	if (fchmod(fd, mode) == -1 ||
	    write(fd, line, AGENT_KEY_LEN + 1) != AGENT_KEY_LEN + 1 ||
	    fsync(fd) == -1 || close(fd) == -1) {
		fprintf(stderr, "reops-agent: unable to write '%s': %s\n",
		    path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

/* PREFIX gets the secret key (0600), PREFIX.pub the public one; never over
   an existing file. */
static int
keygen(const char *prefix)
{
	char	pub[AGENT_KEY_LEN + 1], sec[AGENT_KEY_LEN + 1], *pubpath;
	int	rc = EXIT_OK;

	if (zmq_curve_keypair(pub, sec) == -1) {
		fprintf(stderr, "reops-agent: unable to make a key pair: %s\n",
		    zmq_strerror(zmq_errno()));
		return EXIT_INTERNAL;
	}
	pubpath = xasprintf("%s.pub", prefix);
	if (access(pubpath, F_OK) == 0) {
		fprintf(stderr, "reops-agent: unable to create '%s': %s\n",
		    pubpath, strerror(EEXIST));
		rc = EXIT_FAILED;
	} else if (write_key(prefix, sec, 0600) == -1) {
		rc = EXIT_FAILED;
	} else if (write_key(pubpath, pub, 0644) == -1) {
		unlink(prefix);
		rc = EXIT_FAILED;
	} else
		printf("%s\n", pub);
	explicit_bzero(sec, sizeof sec);
	free(pubpath);
	return rc;
}

static void
usage(void)
{
	fputs(usage_text, stderr);
	exit(EXIT_USAGE);
}

static long
number(const char *s, const char *what, long min, long max)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "reops-agent: %s '%s' is not a number from "
		    "%ld to %ld\n", what, s, min, max);
		exit(EXIT_USAGE);
	}
	return v;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "keygen", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *default_endpoint[] = { "tcp://*:7707" };
	struct agent_conf	 c;
	struct err		 e;
	const char		*env;
	char			*authorized;
	int			 ch, rc;

	memset(&c, 0, sizeof c);
	c.jobs = AGENT_JOBS_DEFAULT;
	c.maxmsg = AGENT_MAXMSG_DEFAULT;
	c.heartbeat_ms = 2000;
	while ((ch = getopt_long(argc, argv, "a:dhj:k:l:M:", longopts, NULL))
	    != -1) {
		switch (ch) {
		case 'K':
			return keygen(optarg);
		case 'V':
			printf("reops-agent %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		case 'a':
			c.authorized = optarg;
			break;
		case 'd':
			c.foreground = 1;
			break;
		case 'j':
			c.jobs = (int)number(optarg, "-j", 1, 4096);
			break;
		case 'k':
			c.keyfile = optarg;
			break;
		case 'l':
			if (c.nendpoints == nitems(c.endpoints)) {
				fprintf(stderr, "reops-agent: at most %zu -l\n",
				    nitems(c.endpoints));
				return EXIT_USAGE;
			}
			c.endpoints[c.nendpoints++] = optarg;
			break;
		case 'M':
			c.maxmsg = number(optarg, "-M", 1024, INT_MAX - 65536);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || c.keyfile == NULL || c.authorized == NULL)
		usage();
	if (c.nendpoints == 0) {
		c.endpoints[0] = default_endpoint[0];
		c.nendpoints = 1;
	}
	if ((env = getenv("REOPS_AGENT_HEARTBEAT_MS")) != NULL)
		c.heartbeat_ms = (int)number(env, "REOPS_AGENT_HEARTBEAT_MS",
		    10, 3600000);
	if (agent_key_read_secret(c.keyfile, c.secret, c.public, &e) == -1) {
		fprintf(stderr, "reops-agent: %s\n", e.msg);
		return EXIT_USAGE;
	}
	/* Check the file now, while errors still reach the terminal. */
	{
		struct agent_auth a = { NULL, 0 };

		if (agent_auth_load(&a, c.authorized, &e) == -1) {
			fprintf(stderr, "reops-agent: %s\n", e.msg);
			return EXIT_USAGE;
		}
		agent_auth_free(&a);
	}
	/* daemon(3) moves to /, and SIGHUP must find the same file. */
	if ((authorized = realpath(c.authorized, NULL)) == NULL) {
		fprintf(stderr, "reops-agent: '%s': %s\n", c.authorized,
		    strerror(errno));
		return EXIT_USAGE;
	}
	c.authorized = authorized;
	/* Before any ZeroMQ thread exists: they would not survive a fork. */
	if (!c.foreground) {
		openlog("reops-agent", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		if (daemon(0, 0) == -1) {
			fprintf(stderr, "reops-agent: daemon: %s\n",
			    strerror(errno));
			return EXIT_FAILED;
		}
		foreground = 0;
	}
	rc = agent_serve(&c);
	explicit_bzero(c.secret, sizeof c.secret);
	free(authorized);
	return rc;
}
