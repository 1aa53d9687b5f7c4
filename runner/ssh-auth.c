/*
 * ssh-auth.c: logging in on a session whose host key was accepted, one
 * step at a time for the poll loop: the ssh-agent's identities first,
 * then the key files, each read once per run; the refusal says what was
 * tried, never a passphrase.
 */
#include <string.h>

#include <libssh2.h>

#include "ssh.h"
#include "ssh-int.h"

/* Each key file is read once per run, again after a failure that may pass. */
static const struct ssh_key *
key_for(struct ssh_cache *sc, const char *path, const char *pass_env)
{
	struct ssh_key	*k;
	size_t		 i;

	for (i = 0; i < sc->nkeys; i++) {
		k = sc->keys[i];
		if (strcmp(k->path, path) == 0 && (k->pass_env == NULL ?
		    pass_env == NULL : pass_env != NULL &&
		    strcmp(k->pass_env, pass_env) == 0)) {
			/* Never a short-lived failure for the whole run. */
			if (k->transient) {
				ssh_key_free(k);
				ssh_key_load(k, path, pass_env);
			}
			return k;
		}
	}
	k = xcalloc(1, sizeof *k);
	ssh_key_load(k, path, pass_env);
	sc->keys = xgrow(sc->keys, sc->nkeys, sizeof *sc->keys);
	sc->keys[sc->nkeys++] = k;
	return k;
}

/* Agent identities first, then key files; each may take several calls. */
int
auth_step(struct ssh_cache *sc, struct conn *c, struct slot *sl)
{
	struct libssh2_agent_publickey	*next;
	const struct ssh_key		*k;
	const char			*key;
	unsigned int			 ulen = (unsigned int)strlen(c->user);
	int				 r;

	if (c->agent && c->agent_phase < 2) {
		if (c->agent_phase == 0) {
			c->agent_phase = 2;
			if ((c->ag = libssh2_agent_init(c->s)) == NULL ||
			    libssh2_agent_connect(c->ag) != 0 ||
			    libssh2_agent_list_identities(c->ag) != 0) {
				buf_adds(&c->tried, c->tried.len ? ", " : "");
				buf_adds(&c->tried, "ssh-agent (unavailable)");
			} else {
				c->agent_phase = 1;
				buf_adds(&c->tried, c->tried.len ? ", " : "");
				buf_adds(&c->tried, "ssh-agent");
			}
		}
		while (c->agent_phase == 1) {
			if (!c->in_auth) {
				if (libssh2_agent_get_identity(c->ag, &next,
				    c->ident) != 0) {
					c->agent_phase = 2;
					break;
				}
				c->ident = next;
			}
			r = libssh2_agent_userauth(c->ag, c->user, c->ident);
			if (r == LIBSSH2_ERROR_EAGAIN) {
				c->in_auth = 1;
				return wait_dirs(sl, c->s);
			}
			c->in_auth = 0;
			if (r == 0)
				return 1;
			if (r == LIBSSH2_ERROR_SOCKET_SEND ||
			    r == LIBSSH2_ERROR_SOCKET_RECV ||
			    r == LIBSSH2_ERROR_SOCKET_DISCONNECT)
				return conn_dead(c, "connection to %s port %d "
				    "lost during authentication: %s", c->addr,
				    c->port, last_error(c->s));
		}
	}
	for (; c->key_i < c->nkeys; c->key_i++) {
		key = c->keys[c->key_i];
		k = key_for(sc, key, c->pass_env);
		if (k->problem != NULL) {
			/* Never the passphrase itself: where it was to come
			 * from, at most. */
			buf_printf(&c->tried, "%skey '%s' (%s)",
			    c->tried.len ? ", " : "", key, k->problem);
			continue;
		}
		r = libssh2_userauth_publickey_frommemory(c->s, c->user, ulen,
		    NULL, 0, k->data.data, k->data.len, k->passphrase != NULL ?
		    k->passphrase : "");
		if (r == LIBSSH2_ERROR_EAGAIN) {
			c->in_auth = 1;
			return wait_dirs(sl, c->s);
		}
		c->in_auth = 0;
		if (r == 0)
			return 1;
		if (r == LIBSSH2_ERROR_FILE) {
			buf_printf(&c->tried, "%skey '%s' (unusable: wrong "
			    "passphrase or unsupported format)", c->tried.len ?
			    ", " : "", key);
			continue;
		}
		if (r == LIBSSH2_ERROR_SOCKET_SEND ||
		    r == LIBSSH2_ERROR_SOCKET_RECV ||
		    r == LIBSSH2_ERROR_SOCKET_DISCONNECT)
			return conn_dead(c, "connection to %s port %d lost "
			    "during authentication: %s", c->addr, c->port,
			    last_error(c->s));
		buf_printf(&c->tried, "%skey '%s'", c->tried.len ? ", " : "",
		    key);
	}
	return conn_dead(c, "authentication refused for user '%s' at %s port "
	    "%d (tried: %s)", c->user, c->addr, c->port,
	    c->tried.len ? c->tried.data : "no agent and no key files");
}
