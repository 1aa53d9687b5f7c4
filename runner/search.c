/*
 * search.c: the include search. A name that starts with "/" or has a
 * "." or ".." component is a path, only looked up as such (relative to
 * the including file); any other name is looked up next to the including
 * file, then in each directory of REOPS_PATH (colon-separated; empty
 * entries are skipped), then in the library.
 *
 * The library is $(pkgdatadir)/pipelines, which make install fills from
 * pipelines/lib. A reops-run whose own file (/proc/self/exe) sits in the
 * build directory it was built in uses that tree's pipelines/lib instead,
 * so that a build runs and tests the library it was built with.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "search.h"

#ifndef REOPS_PKGDATADIR
#define REOPS_PKGDATADIR	"/usr/local/share/reops-run"
#endif

/* "/x", "./x", "a/../b": a path, only ever taken from the includer. */
static int
is_path(const char *name)
{
	const char	*p = name;
	size_t		 n;

	if (name[0] == '/')
		return 1;
	for (;;) {
		n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' &&
		    p[1] == '.'))
			return 1;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

/* 1 when this very program is the one built in REOPS_BUILDDIR. */
static int
in_build_tree(void)
{
#if defined(REOPS_BUILDDIR) && defined(REOPS_SRCDIR)
	char	*self, *dir, *build;
	int	 r;

	if ((self = realpath("/proc/self/exe", NULL)) == NULL)
		return 0;
	dir = path_dir(self);
	build = realpath(REOPS_BUILDDIR, NULL);
	r = build != NULL && strcmp(dir, build) == 0;
	free(build);
	free(dir);
	free(self);
	return r;
#else
	return 0;
#endif
}

/* The library's directory: the build tree's or the installed one. */
const char *
pipeline_library(void)
{
	static int	 done;
	static char	 lib[PATH_MAX];

	if (!done) {
		done = 1;
#if defined(REOPS_BUILDDIR) && defined(REOPS_SRCDIR)
		if (in_build_tree()) {
			char	*real;

			/* abs_top_srcdir may be "build/../..": say it plainly. */
			if ((real = realpath(REOPS_SRCDIR "/pipelines/lib",
			    NULL)) != NULL) {
				snprintf(lib, sizeof lib, "%s", real);
				free(real);
			} else
				snprintf(lib, sizeof lib, "%s", REOPS_SRCDIR
				    "/pipelines/lib");
			return lib;
		}
#endif
		snprintf(lib, sizeof lib, "%s", REOPS_PKGDATADIR "/pipelines");
	}
	return lib;
}

/* Tries dir/name; 1 and *out set when it exists. */
static int
try(const char *dir, const char *name, struct buf *tried, char **out)
{
	char	*path;

	path = xasprintf("%s/%s", dir, name);
	if (access(path, F_OK) == 0) {
		*out = path;
		return 1;
	}
	if (tried != NULL)
		buf_printf(tried, ", %s", path);
	free(path);
	return 0;
}

/*
 * The file to load for "pipeline: name" where first is the name next to
 * the including file, spelled as messages should show it. NULL when no
 * place has it; tried then lists the places, comma-separated.
 */
char *
pipeline_find(const char *first, const char *name, struct buf *tried)
{
	const char	*rp, *p, *colon;
	char		*dir, *out = NULL;

	if (tried != NULL)
		buf_adds(tried, first);
	if (access(first, F_OK) == 0 || is_path(name))
		return xstrdup(first);
	if ((rp = getenv("REOPS_PATH")) != NULL) {
		for (p = rp; *p != '\0'; p = *colon != '\0' ? colon + 1 :
		    colon) {
			if ((colon = strchr(p, ':')) == NULL)
				colon = p + strlen(p);
			if (colon == p)
				continue;
			dir = xstrndup(p, (size_t)(colon - p));
			if (try(dir, name, tried, &out)) {
				free(dir);
				return out;
			}
			free(dir);
		}
	}
	if (try(pipeline_library(), name, tried, &out))
		return out;
	return NULL;
}

/* The search path, one place a line, for reops-run -v --version. */
void
pipeline_search_print(FILE *fp)
{
	const char	*rp, *p, *colon;

	fputs("include search path:\n", fp);
	fputs("  (the including file's directory)\n", fp);
	if ((rp = getenv("REOPS_PATH")) != NULL) {
		for (p = rp; *p != '\0'; p = *colon != '\0' ? colon + 1 :
		    colon) {
			if ((colon = strchr(p, ':')) == NULL)
				colon = p + strlen(p);
			if (colon > p)
				fprintf(fp, "  %.*s (REOPS_PATH)\n",
				    (int)(colon - p), p);
		}
	}
	fprintf(fp, "  %s (%s)\n", pipeline_library(), in_build_tree() ?
	    "the build tree's library" : "the installed library");
}
