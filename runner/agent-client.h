/*
 * agent-client.h: the runner's side of the reops-agent protocol. A client
 * is one CURVE-secured DEALER socket connected to one agent, plus a socket
 * monitor that tells a refused key (ZAP) from a wrong agent key (failed
 * CURVE handshake) from a closed connection, so each becomes a reason and
 * none a timeout. Everything is non-blocking so it fits a poll loop.
 *
 *	c = agent_client_open(ctx, "tcp://127.0.0.1:7707", &keys, &opt, &e);
 *	agent_client_exec(c, 1, "uname -a", 5000, &e);
 *	loop: zmq_poll(items from agent_client_pollitems, ...);
 *	      while ((r = agent_client_recv(c, &reply, &e)) == 1) ...
 */
#ifndef REOPS_AGENT_CLIENT_H
#define REOPS_AGENT_CLIENT_H

#include <stdint.h>

#include <zmq.h>

#include "frame.h"
#include "util.h"

#define AGENT_PORT		7707	/* the documented default */
#define AGENT_KEY_LEN		40	/* a Z85 CURVE key */

/* Why a client failed; the runner names each in its row. */
enum agent_fail {
	AGENT_OK = 0,
	AGENT_EAUTH,		/* the agent's ZAP handler refused our key */
	AGENT_EHANDSHAKE,	/* CURVE handshake failed: wrong agent key,
				   or not a reops-agent on the port */
	AGENT_EDISCONNECTED,	/* the agent closed an established connection */
	AGENT_ESEND,		/* a request could not be queued */
	AGENT_EPROTO		/* the agent sent a reply that does not decode */
};

struct agent_keys {
	char	server_public[AGENT_KEY_LEN + 1];
	char	public[AGENT_KEY_LEN + 1];
	char	secret[AGENT_KEY_LEN + 1];
};

struct agent_client_opt {
	int	heartbeat_ms;	/* ZMTP heartbeat interval; 0: 1000 */
};

/* A reply; f's byte fields point into msg until agent_reply_free. */
struct agent_reply {
	zmq_msg_t	msg;
	struct frame	f;
};

struct agent_client;

/*
 * Key files hold one Z85 key on their first line (reops-agent --keygen).
 * agent_key_read_secret refuses a file that others may read and derives
 * the public key.
 */
int	agent_key_read_secret(const char *, char *, char *, struct err *);
int	agent_key_read_public(const char *, char *, struct err *);

struct agent_client *agent_client_open(void *, const char *,
	    const struct agent_keys *, const struct agent_client_opt *,
	    struct err *);
void	agent_client_close(struct agent_client *);

/* The two sockets to zmq_poll for ZMQ_POLLIN: the DEALER and its monitor. */
void	agent_client_pollitems(struct agent_client *, zmq_pollitem_t[2]);
/*
 * The same as two file descriptors (ZMQ_FD) for a poll(2) loop. They are
 * edge-triggered: when either is readable, call agent_client_recv until
 * it returns 0; do the same after every send.
 */
int	agent_client_fds(struct agent_client *, int[2]);

/* Requests; each returns 0, or -1 with e set. */
int	agent_client_send(struct agent_client *, uint8_t, uint32_t,
	    const uint32_t *, size_t, const struct frame_bytes *, size_t,
	    struct err *);
/* Bytes sent as they are, e.g. to test the agent with malformed frames. */
int	agent_client_send_raw(struct agent_client *, const void *, size_t,
	    struct err *);
int	agent_client_exec(struct agent_client *, uint32_t, const char *,
	    uint32_t, struct err *);
/* exec with the bytes given as the command's stdin (exec-input). */
int	agent_client_exec_input(struct agent_client *, uint32_t, const char *,
	    uint32_t, const void *, size_t, struct err *);
int	agent_client_put_file(struct agent_client *, uint32_t, const char *,
	    unsigned, const void *, size_t, struct err *);
int	agent_client_kill(struct agent_client *, uint32_t, uint32_t,
	    struct err *);

/*
 * Reads what has arrived without blocking: 1 with a reply (keepalives are
 * consumed here), 0 when nothing is waiting, -1 when the client failed
 * (agent_client_failure says why; e holds the message). Call it until it
 * returns 0 whenever a poll item is readable and after each send.
 */
int	agent_client_recv(struct agent_client *, struct agent_reply *,
	    struct err *);
void	agent_reply_free(struct agent_reply *);

/* The next event of a zmq_socket_monitor PAIR socket: 1, or 0: none. */
int		 monitor_next(void *, uint16_t *, uint32_t *);

enum agent_fail	 agent_client_failure(const struct agent_client *);
int		 agent_client_ready(const struct agent_client *);
/* A TCP connection was made once (something listens on the port). */
int		 agent_client_connected(const struct agent_client *);
/* How many connection attempts found nothing listening. */
int		 agent_client_retries(const struct agent_client *);

#endif
