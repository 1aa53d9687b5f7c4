/*
 * ssh-int.h: what the ssh modules share and nothing else needs: ssh.c
 * (the poll loop, the commands), ssh-cache.c (the run's connections and
 * their settings), ssh-conn.c (connecting), ssh-auth.c (logging in) and
 * ssh-jump.c (targets behind a bastion).
 */
#ifndef REOPS_SSH_INT_H
#define REOPS_SSH_INT_H

#include <netdb.h>
#include <poll.h>
#include <pthread.h>

#include <libssh2.h>

#include "run.h"
#include "ssh.h"

struct known_hosts;

extern pthread_mutex_t	ssh_lib_lock;	/* libssh2_init and _exit */

enum conn_state {
	C_NEW,
	C_JUMP,		/* the bastion's session being made ready */
	C_TUNNEL,	/* a direct-tcpip channel on it being opened */
	C_RESOLVE,	/* getaddrinfo_a(3) in progress */
	C_TCP,		/* connect(2) in progress */
	C_HANDSHAKE,
	C_AUTH,
	C_READY,
	C_DEAD		/* unreachable for the rest of the run */
};

enum job_state {
	J_OPEN,
	J_EXEC,
	J_IO,
	J_CLOSE,
	J_WAIT_CLOSED,
	J_FREE
};

/* Killing a command given up, over a second channel. */
enum kill_state {
	K_NONE,
	K_OPEN,
	K_EXEC,
	K_READ,
	K_CLOSE,
	K_WAIT_CLOSED
};

struct slot;
struct conn;

/*
 * A target reached through a bastion: a direct-tcpip channel on the
 * bastion's session stands in for the target's TCP socket. The target's
 * libssh2 session reads and writes the two buffers (its send and recv
 * callbacks); the bastion's pump (jump_service) moves them to and from the
 * channel, in the one poll loop, so no descriptor is spent on it.
 */
enum tunnel_state {
	T_WAIT,		/* to be opened, one at a time per bastion */
	T_OPEN,
	T_FAILED,	/* error says why */
	T_CLOSE		/* the target let go: flush, close, free */
};

struct tunnel {
	struct conn		*c;		/* the target; NULL once let go */
	struct conn		*b;		/* the bastion */
	char			*addr;		/* the target, from the bastion */
	int			 port;
	LIBSSH2_CHANNEL		*ch;
	enum tunnel_state	 state;
	struct buf		 in;		/* from the target, not yet read */
	size_t			 in_off;
	struct buf		 out;		/* to the target, not yet written */
	size_t			 out_off;
	int			 eof;		/* the target's side is closed */
	char			*error;
	struct tunnel		*next;
};

struct conn {
	const struct host	*host;
	char			*addr;
	int			 port;
	char			*user;
	char			**keys;		/* identity files, in order */
	size_t			 nkeys;
	int			 agent;		/* try ssh-agent first */
	const char		*pass_env;
	int			 connect_timeout;
	struct known_hosts	*known;
	enum conn_state		 state;
	char			*reason;	/* why C_DEAD */
	int			 fd;
	struct addrinfo		*ai0, *ai;
	struct gaicb		*gai;		/* a name being resolved */
	int			 connect_errno;
	LIBSSH2_SESSION		*s;
	LIBSSH2_AGENT		*ag;
	struct libssh2_agent_publickey *ident;
	int			 agent_phase;	/* 0 start, 1 trying, 2 done */
	int			 in_auth;	/* a call returned EAGAIN */
	size_t			 key_i;
	struct buf		 tried;		/* for the refusal's reason */
	struct slot		*busy;
	/* A target behind a bastion: */
	struct conn		*jump;
	char			*jump_name;	/* as proxy-jump or ProxyJump say */
	struct tunnel		*tun;
	/* A bastion: */
	int			 is_jump;
	struct host		 jhost;		/* what it is, when not in hosts.d */
	char			*jstr[3];	/* jhost's name, user; cache key */
	struct tunnel		*tunnels;
	struct tunnel		*opening;	/* libssh2 opens one at a time */
	struct tunnel		*pending;	/* to call again before all else */
	int			 pending_op;
	int			 pump_again;
	int			 fds;		/* taken from the run's budget */
	int			 ours;		/* C_DEAD for want of our fds */
};

struct slot {
	struct job		*job;
	struct conn		*c;
	LIBSSH2_CHANNEL		*ch;
	enum job_state		 js;
	size_t			 in_off;
	int			 eof_sent;
	int			 events;
	int			 kick;		/* step again without waiting */
	long long		 start;
	long long		 deadline;	/* 0: none */
	long long		 connect_deadline;
	/*
	 * The remote command's process group, as the wrapper reports it on
	 * stderr, so that a deadline or ^C can kill it over a new channel.
	 */
	long			 pgid;
	int			 pgid_state;	/* 0 looking, 1 found, 2 none */
	enum kill_state		 killing;
	LIBSSH2_CHANNEL		*kch;
	long long		 kill_deadline;
	int			 given_up;	/* the row is final: killing */
};

struct ssh_cache {
	struct hmap		 conns;		/* host name -> conn */
	struct hmap		 known;		/* group|file -> known_hosts */
	struct conn		**all;
	size_t			 nall;
	struct known_hosts	**khs;
	char			**khkeys;
	size_t			 nkhs;
	struct ssh_key		**keys;		/* each key file, read once */
	size_t			 nkeys;
	struct ssh_config	*cfg;
	char			*cfg_error;
	const struct inventory	*inv;
	struct conn		**jumps;	/* the bastions, for the loop */
	size_t			 njumps;
};

/* ssh-cache.c */
struct ssh_cache *cache_get(struct run *);
struct conn *conn_new(struct ssh_cache *, const struct host *);
void	conn_free(struct conn *);

/* ssh-conn.c */
int	conn_step(struct ssh_cache *, struct conn *, struct slot *);
void	conn_drop(struct conn *, int);
int	conn_dead(struct conn *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	resolve_free(struct conn *, int);
const char *last_error(LIBSSH2_SESSION *);
int	wait_dirs(struct slot *, LIBSSH2_SESSION *);
void	conn_timeout(struct conn *, int);
const char *conn_error(struct conn *);
int	conn_pollfd(const struct conn *);
int	conn_resolving(const struct conn *);

/* ssh-auth.c */
int	auth_step(struct ssh_cache *, struct conn *, struct slot *);

/* ssh-jump.c */
ssize_t	tunnel_send(libssh2_socket_t, const void *, size_t, int, void **);
ssize_t	tunnel_recv(libssh2_socket_t, void *, size_t, int, void **);
void	tunnel_release(struct conn *);
void	jump_fail_all(struct conn *, const char *);
int	conn_tunnel_ready(const struct conn *, int);
int	jump_pollfds(struct ssh_cache *, struct pollfd *);
void	jump_service(struct ssh_cache *, const struct pollfd *);

#endif
