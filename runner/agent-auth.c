/*
 * agent-auth.c: which runners may talk to this agent. The AUTHORIZED file
 * lists their public CURVE keys; the ZAP handler (RFC 27, on
 * inproc://zeromq.zap.01) answers libzmq's question for each CURVE
 * handshake with 200 and the key as User-Id, or 400. Other mechanisms
 * never get here with a CURVE server socket, and are refused if they do.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <zmq.h>

#include "agent.h"

void
agent_auth_free(struct agent_auth *a)
{
	free(a->keys);
	a->keys = NULL;
	a->n = 0;
}

/*
 * One key a line; blank lines and lines starting with '#' are skipped;
 * anything after the key and a blank is a comment. All or nothing: a bad
 * line leaves *a untouched.
 */
int
agent_auth_load(struct agent_auth *a, const char *path, struct err *e)
{
	struct agent_auth	 next = { NULL, 0 };
	FILE			*fp;
	char			*line = NULL, *p;
	size_t			 cap = 0, n;
	ssize_t			 len;
	int			 lineno = 0;
	uint8_t			 raw[32];

	if ((fp = fopen(path, "re")) == NULL)
		return err_set(e, "unable to open '%s': %s", path,
		    strerror(errno));
	while ((len = getline(&line, &cap, fp)) != -1) {
		lineno++;
		p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
			continue;
		n = strcspn(p, " \t\r\n");
		if (p[n] != '\0' && strchr(" \t\r\n", p[n]) != NULL)
			p[n] = '\0';
		if (n != AGENT_KEY_LEN || zmq_z85_decode(raw, p) == NULL) {
			err_at(e, path, lineno, (int)(p - line) + 1,
			    "'%.*s' is not a Z85 public key", (int)(n > 60 ?
			    60 : n), p);
			free(line);
			free(next.keys);
			fclose(fp);
			return -1;
		}
		next.keys = xreallocarray(next.keys, next.n + 1,
		    sizeof next.keys[0]);
		memcpy(next.keys[next.n++], raw, 32);
	}
	free(line);
	if (ferror(fp)) {
		fclose(fp);
		free(next.keys);
		return err_set(e, "unable to read '%s': %s", path,
		    strerror(errno));
	}
	fclose(fp);
	agent_auth_free(a);
	*a = next;
	return 0;
}

int
agent_auth_has(const struct agent_auth *a, const uint8_t *key)
{
	size_t	i;

	for (i = 0; i < a->n; i++)
		if (memcmp(a->keys[i], key, 32) == 0)
			return 1;
	return 0;
}

/* Receives the remaining frames of a message into parts, at most max. */
static size_t
zap_recv(void *s, zmq_msg_t *parts, size_t max)
{
	zmq_msg_t	extra;
	size_t		n = 0;
	int		more = 1;

	while (more) {
		if (n < max) {
			zmq_msg_init(&parts[n]);
			if (zmq_msg_recv(&parts[n], s, 0) == -1) {
				zmq_msg_close(&parts[n]);
				break;
			}
			more = zmq_msg_more(&parts[n]);
			n++;
		} else {
			zmq_msg_init(&extra);
			if (zmq_msg_recv(&extra, s, 0) == -1) {
				zmq_msg_close(&extra);
				break;
			}
			more = zmq_msg_more(&extra);
			zmq_msg_close(&extra);
		}
	}
	return n;
}

static int
part_is(zmq_msg_t *m, const char *s)
{
	return zmq_msg_size(m) == strlen(s) &&
	    memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

static void
zap_reply(void *s, zmq_msg_t *reqid, const char *code, const char *text,
    const char *user)
{
	zmq_send(s, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(s, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
	zmq_send(s, code, strlen(code), ZMQ_SNDMORE);
	zmq_send(s, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(s, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(s, "", 0, 0);
}

/*
 * A ZAP request: version, request id, domain, address, routing id,
 * mechanism, then the mechanism's credentials (CURVE: the client's
 * 32-byte public key).
 */
void
agent_zap_handle(void *s, const struct agent_auth *a)
{
	zmq_msg_t	 p[8];
	char		 key[AGENT_KEY_LEN + 1] = "", *addr, *mech;
	size_t		 n, i;

	if ((n = zap_recv(s, p, nitems(p))) == 0)
		return;
	if (n < 2) {
		/* No request id to answer with; the REP needs a reply. */
		zmq_send(s, "", 0, 0);
		goto out;
	}
	if (n < 7 || !part_is(&p[0], "1.0")) {
		agent_log(LOG_WARNING, "malformed ZAP request refused");
		zap_reply(s, &p[1], "500", "malformed request", "");
		goto out;
	}
	addr = agent_printable(zmq_msg_data(&p[3]), zmq_msg_size(&p[3]), 64);
	mech = agent_printable(zmq_msg_data(&p[5]), zmq_msg_size(&p[5]), 16);
	if (!part_is(&p[5], "CURVE") || zmq_msg_size(&p[6]) != 32) {
		agent_log(LOG_NOTICE, "refused %s from %s: only CURVE is "
		    "admitted", mech, addr);
		zap_reply(s, &p[1], "400", "mechanism not admitted", "");
	} else {
		zmq_z85_encode(key, zmq_msg_data(&p[6]), 32);
		if (agent_auth_has(a, zmq_msg_data(&p[6]))) {
			agent_log(LOG_INFO, "admitted runner %s from %s", key,
			    addr);
			zap_reply(s, &p[1], "200", "OK", key);
		} else {
			agent_log(LOG_NOTICE, "refused runner %s from %s: "
			    "not an authorized key", key, addr);
			zap_reply(s, &p[1], "400", "key not authorized", "");
		}
	}
	free(addr);
	free(mech);
 out:
	for (i = 0; i < n; i++)
		zmq_msg_close(&p[i]);
}
