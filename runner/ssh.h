/*
 * ssh.h: the ssh transport (libssh2, one poll loop over every session) and
 * the parts it is built from: ssh_config(5) lookups, known_hosts checking
 * and the small digests it needs.
 */
#ifndef REOPS_SSH_H
#define REOPS_SSH_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct run;
struct job;

/* The per-run session cache lives in struct run; ssh_cleanup closes it. */
int	ssh_run(struct run *, struct job **, size_t);
void	ssh_cleanup(struct run *);

/* What ~/.ssh/config (or -F FILE) says about one host. */
struct ssh_host_config {
	char	 *hostname;
	char	 *user;
	int	  port;			/* 0: unset */
	int	  connect_timeout;	/* 0: unset */
	char	 *known_hosts;		/* UserKnownHostsFile, the first */
	char	**identity;		/* IdentityFile, tokens expanded */
	size_t	  nidentity;
	char	 *proxy_jump;		/* ProxyJump, checked; "none" */
};

struct ssh_config;

int	ssh_config_load(const char *, int, struct ssh_config **, struct err *);
int	ssh_config_load_buffer(const char *, const char *, size_t,
	    struct ssh_config **, struct err *);
void	ssh_config_lookup(const struct ssh_config *, const char *,
	    struct ssh_host_config *);
void	ssh_host_config_free(struct ssh_host_config *);
void	ssh_config_free(struct ssh_config *);
char	*ssh_expand_path(const char *, const char *);
const char *ssh_home(void);
const char *ssh_local_user(void);

/* A private key file, read (and opened, if need be) once per run. */
struct ssh_key {
	char		*path;
	char		*pass_env;
	struct buf	 data;		/* the file, or the key it holds */
	const char	*passphrase;	/* for libssh2, when it must open it */
	char		*problem;	/* why it cannot be used, or NULL */
	int		 transient;	/* the problem may pass: read again */
};

void	ssh_key_load(struct ssh_key *, const char *, const char *);
void	ssh_key_free(struct ssh_key *);

/* SHA-256, for copy's checksum and host key fingerprints. */
struct sha256 {
	uint32_t	h[8];
	uint64_t	len;
	unsigned char	block[64];
	size_t		fill;
};
void	sha256_init(struct sha256 *);
void	sha256_update(struct sha256 *, const void *, size_t);
void	sha256_final(struct sha256 *, unsigned char[32]);
void	sha256_hex(const void *, size_t, char[65]);

#endif
