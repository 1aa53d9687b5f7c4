/*
 * virt-int.h: what virt.c, virt-create.c and virt-wait.c share and nothing
 * else needs: the run's libvirt connections and the helpers around them.
 */
#ifndef REOPS_VIRT_INT_H
#define REOPS_VIRT_INT_H

#include "virt.h"

struct vconn {
	char		*uri;
	virConnectPtr	 conn;
	char		*error;		/* why it could not be opened */
	char		 virttype[8];	/* test, kvm or qemu; "" unknown yet */
};

struct virt {
	struct vconn	*c;
	size_t		 n;
	/*
	 * Hosts made up for provision: the ssh transport caches sessions by
	 * host for the whole run, so they live until the run ends.
	 */
	struct host	**hosts;
	size_t		  nhosts;
};

int	 virt_err(struct err *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 last_error_is(int);
struct vconn *virt_conn(struct run *, const char *);
int	 dom_state(virDomainPtr);
void	 xml_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 meta_element(struct buf *, const char *, const char *,
	    const char *, const struct virt_meta *, int);

#endif
