/*
 * virt.h: systems (virtual machines) through libvirt. libvirt is the only
 * record of what exists: each domain reops-run creates carries a <metadata>
 * element in the project's namespace (system, type, inventory file and the
 * volumes it made), read back by ls and destroy. No database of our own.
 */
#ifndef REOPS_VIRT_H
#define REOPS_VIRT_H

#include <libvirt/libvirt.h>

#include "run.h"

#define VIRT_NS		"https://reops.dev/xmlns/reops-run/1"
#define VIRT_NS_PREFIX	"reops"

/* How far create, start and reload wait, in this order. */
enum virt_wait {
	WAIT_NONE,
	WAIT_RUNNING,
	WAIT_IP,
	WAIT_SSH,
	WAIT_SHUTOFF		/* stop: until shut off, then force off */
};

#define VIRT_MAX_VOLUMES	4

/* What the metadata of a domain says, when reops-run created it. */
struct virt_meta {
	char	*name;
	char	*type;
	char	*inventory;
	char	*hostkey;	/* "type base64", pinned on first contact */
	size_t	 nvolumes;
	char	*pools[VIRT_MAX_VOLUMES];
	char	*volumes[VIRT_MAX_VOLUMES];
};

/* One system row while a stage works on it. */
struct virt_op {
	struct run		*run;
	struct stage		*stage;
	struct table		*table;
	struct row		*row;
	const struct system	*sys;
	virConnectPtr		 conn;	/* borrowed from the run's cache */
	virDomainPtr		 dom;	/* NULL: no such domain */
	struct buf		 note;	/* what was done, for stdout */
	struct err		 e;
	int			 code;	/* when the operation fails */
	int			 asked;	/* a shutdown was requested */
	int			 act;	/* connected: the stage acts on it */
	int			 failed;/* what it did failed (see e, code) */
	long long		 start;	/* when the stage began on it */
	int			 told;	/* final, and the progress told */
	/*
	 * Set by a virt_fn that succeeded when its stage goes on with the
	 * row after virt_stage (provision): that stage tells the progress
	 * (run_row_done) once the row is final.
	 */
	int			 later;
};

typedef int (*virt_fn)(struct virt_op *);

/* The columns virt_stage sets on every system row. */
extern const char *const virt_columns[];

int	 virt_stage(struct run *, struct stage *, struct table *, virt_fn,
	    enum virt_wait, int);
enum virt_wait virt_wait_arg(const struct stage *, enum virt_wait);
int	 virt_wait_prepare(struct stage *, struct err *);

int	 virt_create(struct virt_op *);
int	 virt_start(struct virt_op *);
int	 virt_shutdown(struct virt_op *);
int	 virt_destroy(struct virt_op *);
int	 virt_nothing(struct virt_op *);

int	 virt_meta_read(virDomainPtr, struct virt_meta *);
int	 virt_meta_parse(const char *, struct virt_meta *);
void	 virt_meta_free(struct virt_meta *);
const char *virt_state_name(int);
int	 virt_ip(virDomainPtr, const struct system *, char *, size_t);
int	 virt_pin_save(struct run *, const struct host *, const struct system *,
	    struct err *);
struct host *virt_host(struct run *, const struct system *, const char *,
	    int);

#endif
