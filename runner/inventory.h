/*
 * inventory.h: every hosts.d YAML file merged into groups, hosts, types and
 * systems, and the selectors that pick targets out of them.
 */
#ifndef REOPS_INVENTORY_H
#define REOPS_INVENTORY_H

#include "node.h"
#include "util.h"

enum transport {
	TR_LOCAL,
	TR_SSH,
	TR_AGENT
};

enum hostkeys {
	HK_STRICT,
	HK_ACCEPT_NEW,
	HK_OFF
};

struct auth {
	const char	*user;
	const char	*key;		/* private key file, ~ expanded later */
	int		 port;		/* 0: unset */
	const char	*passphrase_env;/* name of the variable, never the value */
	int		 agent;		/* use ssh-agent: -1 unset, 0, 1 */
};

/* An agent group's "agent:"; see knownagents.h for the defaults. */
struct agent_conf {
	int		 port;		/* 0: AGENT_PORT (7707) */
	const char	*key;		/* the runner's secret key; NULL: default */
	const char	*known_agents;	/* pinned agent keys; NULL: default */
	int		 fallback_ssh;	/* "fallback: ssh": unreachable -> ssh */
};

struct group {
	const char	 *name;
	const struct node *where;
	enum transport	  transport;
	struct auth	  auth;
	enum hostkeys	  hostkeys;
	const char	**known_hosts;
	size_t		  nknown_hosts;
	int		  timeout;	/* seconds for a whole operation; 0 unset */
	int		  connect_timeout;
	const char	 *proxy_jump;	/* "[user@]HOST[:PORT]", "none", NULL */
	struct agent_conf agent;	/* transport: agent */
	struct host	**hosts;
	size_t		  nhosts;
};

/*
 * The host key of a system that reops-run created, pinned in the domain's
 * own metadata rather than in a known_hosts file: it goes when the domain
 * goes, so a system created again is trusted anew, and only then.
 */
struct host_pin {
	char		*expected;	/* "type base64", or NULL: learn it */
	char		*seen;		/* learned on first contact */
};

struct host {
	const char	 *name;
	const char	 *address;	/* defaults to name */
	int		  port;		/* 0: the group's or 22 */
	const char	 *user;
	struct group	 *group;
	const struct node *where;
	struct host_pin	 *pin;		/* a system of ours (provision) */
	const char	 *proxy_jump;	/* wins over the group's; "none" */
};

/* A bastion, "[ssh://][user@]HOST[:PORT]", taken apart. */
struct proxy_jump {
	char		*user;		/* NULL: the group's */
	char		*host;		/* an inventory host name or an address */
	int		 port;		/* 0: unset */
};

struct type {
	const char	 *name;
	const struct node *where;
	const char	 *provision;	/* pipeline file, absolute or relative */
	const char	 *provision_base;/* directory it is relative to */
	struct auth	  auth;
	int		  cloud_init;
};

struct hypervisor {
	const char	*uri;
	const char	*pool;
	const char	*network;
};

struct machine {
	int		 cpu;
	int		 ram;		/* MiB */
	int		 disk;		/* GiB; 0: the image's size */
	const char	*image;
	const char	*os;
	const char	*user;
	const char	*hostname;
	const char	*ip;
};

struct system {
	const char	 *name;
	const struct node *where;
	struct type	 *type;
	const struct node *type_where;
	struct hypervisor hypervisor;
	struct machine	  machine;
	const char	 *file;
};

struct inventory {
	char		 *dir;		/* NULL for the embedded default */
	struct doc	**docs;
	size_t		  ndocs;
	struct group	**groups;
	size_t		  ngroups;
	struct host	**hosts;
	size_t		  nhosts;
	struct type	**types;
	size_t		  ntypes;
	struct system	**systems;
	size_t		  nsystems;
	struct hmap	  names;	/* groups and hosts share one namespace */
	struct hmap	  typenames;
	struct hmap	  sysnames;
};

extern const char inventory_default[];

int	inventory_load(const char *, struct inventory **, struct err *);
int	inventory_load_default(struct inventory **, struct err *);
int	inventory_load_string(const char *, const char *, size_t,
	    struct inventory **, struct err *);
void	inventory_free(struct inventory *);
const char *transport_name(enum transport);

int	valid_target_name(const char *);
int	proxy_jump_parse(const char *, struct proxy_jump *, size_t *,
	    const char **);
void	proxy_jump_free(struct proxy_jump *);

#endif
