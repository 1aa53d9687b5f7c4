/*
 * virt-create.c: making and unmaking systems. The domain XML built from
 * the machine spec, copy-on-write disks in the system's pool, NoCloud
 * seeds; create, start, shutdown and destroy, each on one row's domain,
 * run by virt_stage in worker threads. Only the volumes our metadata
 * lists are ever deleted.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "ssh.h"
#include "virt-int.h"

extern char **environ;

static pthread_mutex_t	type_lock = PTHREAD_MUTEX_INITIALIZER;

/* kvm when the hypervisor offers it, else qemu (TCG); test for test://. */
static const char *
virt_type(struct virt_op *op)
{
	struct virt	*v = op->run->virt;
	struct vconn	*c = NULL;
	const char	*drv;
	char		*caps;
	size_t		 i;

	for (i = 0; i < v->n; i++)
		if (v->c[i].conn == op->conn)
			c = &v->c[i];
	if (c == NULL)
		return NULL;
	/* Creates run in threads; the first one asks, the others wait. */
	pthread_mutex_lock(&type_lock);
	if (c->virttype[0] != '\0') {
		pthread_mutex_unlock(&type_lock);
		return c->virttype;
	}
	if ((drv = virConnectGetType(op->conn)) == NULL) {
		pthread_mutex_unlock(&type_lock);
		virt_err(&op->e, "unable to ask '%s' for its driver",
		    op->sys->hypervisor.uri);
		return NULL;
	}
	if (strcasecmp(drv, "test") == 0)
		snprintf(c->virttype, sizeof c->virttype, "%s", "test");
	else if (strcasecmp(drv, "qemu") == 0) {
		caps = virConnectGetDomainCapabilities(op->conn, NULL, NULL,
		    NULL, "kvm", 0);
		snprintf(c->virttype, sizeof c->virttype, "%s",
		    caps != NULL ? "kvm" : "qemu");
		free(caps);
		virResetLastError();
	} else {
		pthread_mutex_unlock(&type_lock);
		err_set(&op->e, "hypervisor driver '%s' of '%s' is not "
		    "supported (test and QEMU are)", drv,
		    op->sys->hypervisor.uri);
		return NULL;
	}
	pthread_mutex_unlock(&type_lock);
	return c->virttype;
}

static const char *
pool_name(const struct system *s)
{
	return s->hypervisor.pool != NULL ? s->hypervisor.pool : "default";
}

/* --- volumes and the cloud-init seed ---------------------------------- */

/* The format of a volume, from <target><format type='...'/>. */
static char *
vol_format(virStorageVolPtr vol)
{
	const char	*p, *q;
	char		*xml, *fmt = NULL;

	if ((xml = virStorageVolGetXMLDesc(vol, 0)) == NULL) {
		virResetLastError();
		return xstrdup("raw");
	}
	if ((p = strstr(xml, "<target>")) != NULL &&
	    (p = strstr(p, "<format type=")) != NULL) {
		p += strlen("<format type=") + 1;
		if ((q = strpbrk(p, "'\"")) != NULL)
			fmt = xstrndup(p, (size_t)(q - p));
	}
	free(xml);
	return fmt != NULL ? fmt : xstrdup("raw");
}

static void
meta_add_volume(struct virt_meta *m, const char *pool, const char *name)
{
	if (m->nvolumes >= VIRT_MAX_VOLUMES)
		return;
	m->pools[m->nvolumes] = xstrdup(pool);
	m->volumes[m->nvolumes] = xstrdup(name);
	m->nvolumes++;
}

/* Deletes what this create made before it failed, and only that. */
static void
delete_volumes(virConnectPtr conn, const struct virt_meta *m,
    struct buf *note)
{
	virStoragePoolPtr	pool;
	virStorageVolPtr	vol;
	size_t			i;

	for (i = 0; i < m->nvolumes; i++) {
		if ((pool = virStoragePoolLookupByName(conn, m->pools[i])) ==
		    NULL) {
			virResetLastError();
			continue;
		}
		if ((vol = virStorageVolLookupByName(pool,
		    m->volumes[i])) != NULL) {
			if (virStorageVolDelete(vol, 0) == 0 && note != NULL)
				buf_printf(note, "%sdeleted volume %s/%s",
				    note->len > 0 ? "; " : "", m->pools[i],
				    m->volumes[i]);
			virStorageVolFree(vol);
		}
		virResetLastError();
		virStoragePoolFree(pool);
	}
}

/* A volume of that name in the pool is someone's: never overwritten. */
static int
vol_taken(struct virt_op *op, virStoragePoolPtr pool, const char *volname)
{
	virStorageVolPtr	vol;

	if ((vol = virStorageVolLookupByName(pool, volname)) != NULL) {
		virStorageVolFree(vol);
		err_set(&op->e, "volume '%s' already exists in pool '%s'; "
		    "not overwriting it", volname, pool_name(op->sys));
		return 1;
	}
	virResetLastError();
	return 0;
}

/*
 * The system's disk: a qcow2 overlay whose backing store is the base image
 * (copy on write, so the image is never written), or a blank qcow2 of
 * 'disk' GiB when the machine names no image.
 */
static int
make_disk(struct virt_op *op, virStoragePoolPtr pool, const char *volname,
    struct virt_meta *m)
{
	const struct machine	*mc = &op->sys->machine;
	virStorageVolPtr	 base = NULL, vol;
	virStorageVolInfo	 info;
	struct buf		 x;
	unsigned long long	 cap;
	char			*path = NULL, *fmt = NULL;
	int			 r = -1;

	buf_init(&x);
	cap = (unsigned long long)mc->disk << 30;
	if (mc->image != NULL) {
		base = mc->image[0] == '/' ?
		    virStorageVolLookupByPath(op->conn, mc->image) :
		    virStorageVolLookupByName(pool, mc->image);
		if (base == NULL) {
			virResetLastError();
			err_set(&op->e, "base image '%s' is not a volume in "
			    "pool '%s' on '%s'", mc->image, pool_name(op->sys),
			    op->sys->hypervisor.uri);
			return -1;
		}
		if ((path = virStorageVolGetPath(base)) == NULL ||
		    virStorageVolGetInfo(base, &info) != 0) {
			virt_err(&op->e, "unable to read base image '%s'",
			    mc->image);
			goto out;
		}
		fmt = vol_format(base);
		if (info.capacity > cap)
			cap = info.capacity;
	}
	xml_printf(&x, "<volume><name>%s</name>", volname);
	buf_printf(&x, "<capacity unit='bytes'>%llu</capacity>"
	    "<allocation unit='bytes'>0</allocation>"
	    "<target><format type='qcow2'/></target>", cap);
	if (path != NULL)
		xml_printf(&x, "<backingStore><path>%s</path>"
		    "<format type='%s'/></backingStore>", path, fmt);
	buf_adds(&x, "</volume>");
	if ((vol = virStorageVolCreateXML(pool, x.data, 0)) == NULL) {
		virt_err(&op->e, "unable to create volume '%s' in pool '%s'",
		    volname, pool_name(op->sys));
		goto out;
	}
	virStorageVolFree(vol);
	meta_add_volume(m, pool_name(op->sys), volname);
	r = 0;
out:
	if (base != NULL)
		virStorageVolFree(base);
	free(path);
	free(fmt);
	buf_free(&x);
	return r;
}

static int
write_file(const char *path, const char *data, size_t len)
{
	FILE	*f;
	int	 r;

	if ((f = fopen(path, "we")) == NULL)
		return -1;
	r = fwrite(data, 1, len, f) == len ? 0 : -1;
	if (fclose(f) != 0)
		r = -1;
	return r;
}

static int
read_file(const char *path, struct buf *b)
{
	char	chunk[65536];
	size_t	n;
	FILE	*f;
	int	r;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(b, chunk, n);
	r = ferror(f) ? -1 : 0;
	fclose(f);
	return r;
}

/*
 * The type's public key: the private key's file name plus ".pub", found as
 * the ssh transport finds the key itself (relative to the inventory file).
 */
static int
public_key(struct virt_op *op, struct buf *key)
{
	const struct type	*ty = op->sys->type;
	const char		*k = ty->auth.key, *slash;
	char			*path, *base, *priv;
	size_t			 i;
	int			 r;

	if (k == NULL) {
		err_set(&op->e, "type '%s' asks for cloud-init but has no "
		    "'auth.key' whose public key to authorize",
		    op->sys->type->name);
		return -1;
	}
	base = NULL;
	if (ty->where != NULL && ty->where->file != NULL &&
	    (slash = strrchr(ty->where->file, '/')) != NULL)
		base = xstrndup(ty->where->file,
		    (size_t)(slash - ty->where->file));
	priv = ssh_expand_path(k, base);
	path = xasprintf("%s.pub", priv);
	free(priv);
	free(base);
	r = read_file(path, key);
	if (r != 0 || key->len == 0)
		err_set(&op->e, "unable to read public key '%s': %s", path,
		    r != 0 ? xstrerror(errno) : "empty file");
	free(path);
	for (i = 0; i < key->len; i++)
		if (key->data[i] == '\n' || key->data[i] == '\r')
			key->len = i;
	if (key->data != NULL)
		key->data[key->len] = '\0';
	return r != 0 || key->len == 0 ? -1 : 0;
}

/* Runs xorriso as virt-install does; its last stderr line on failure. */
static int
run_xorriso(struct virt_op *op, const char *dir)
{
	posix_spawn_file_actions_t	 fa;
	struct buf			 log;
	char				*iso, *ud, *md, *logpath, *nl;
	char				*argv[16];
	pid_t				 pid;
	int				 status, r = -1, n = 0;

	iso = xasprintf("%s/seed.iso", dir);
	ud = xasprintf("%s/user-data", dir);
	md = xasprintf("%s/meta-data", dir);
	logpath = xasprintf("%s/xorriso.log", dir);
	argv[n++] = (char *)"xorriso";
	argv[n++] = (char *)"-as";
	argv[n++] = (char *)"mkisofs";
	argv[n++] = (char *)"-o";
	argv[n++] = iso;
	argv[n++] = (char *)"-V";
	argv[n++] = (char *)"cidata";
	argv[n++] = (char *)"-J";
	argv[n++] = (char *)"-r";
	argv[n++] = ud;
	argv[n++] = md;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, logpath,
	    O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	if ((errno = posix_spawnp(&pid, "xorriso", &fa, NULL, argv,
	    environ)) != 0) {
		err_set(&op->e, "unable to run 'xorriso' for the cloud-init "
		    "seed: %s", xstrerror(errno));
		goto out;
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		r = 0;
		goto out;
	}
	buf_init(&log);
	read_file(logpath, &log);
	while (log.len > 0 && log.data[log.len - 1] == '\n')
		log.data[--log.len] = '\0';
	nl = log.data != NULL ? strrchr(log.data, '\n') : NULL;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		err_set(&op->e, "unable to run 'xorriso' for the cloud-init "
		    "seed: not installed");
	else
		err_set(&op->e, "xorriso failed to build the cloud-init seed: "
		    "%s", nl != NULL ? nl + 1 : log.data != NULL ? log.data :
		    "no message");
	buf_free(&log);
out:
	posix_spawn_file_actions_destroy(&fa);
	free(iso);
	free(ud);
	free(md);
	free(logpath);
	return r;
}

/*
 * A NoCloud seed (volume label "cidata", files user-data and meta-data):
 * the user with the type's public key, the hostname. Built in a private
 * temporary directory, then uploaded as a raw volume to the system's pool,
 * so it works on remote hypervisors too.
 */
static int
make_seed(struct virt_op *op, virStoragePoolPtr pool, const char *volname,
    struct virt_meta *m)
{
	const struct system	*s = op->sys;
	const char		*user, *host, *tmp;
	virStorageVolPtr	 vol = NULL;
	virStreamPtr		 stream = NULL;
	struct buf		 key, ud, md, iso, x;
	char			*dir = NULL, *p;
	size_t			 off;
	int			 r = -1, sent;

	buf_init(&key);
	buf_init(&ud);
	buf_init(&md);
	buf_init(&iso);
	buf_init(&x);
	user = s->machine.user != NULL ? s->machine.user :
	    s->type->auth.user;
	host = s->machine.hostname != NULL ? s->machine.hostname : s->name;
	if (user == NULL) {
		err_set(&op->e, "cloud-init needs a user: set 'user' in the "
		    "machine or 'auth.user' in type '%s'", s->type->name);
		goto out;
	}
	if (public_key(op, &key) != 0)
		goto out;
	/* JSON strings are YAML scalars: nothing in them is interpreted. */
	buf_printf(&ud, "#cloud-config\nhostname: \"%s\"\n"
	    "users:\n  - name: \"%s\"\n    shell: /bin/sh\n"
	    "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n"
	    "    ssh_authorized_keys:\n      - \"%s\"\n", host, user,
	    key.data);
	buf_printf(&md, "instance-id: \"%s\"\nlocal-hostname: \"%s\"\n",
	    s->name, host);
	if (strpbrk(host, "\"\\") != NULL || strpbrk(user, "\"\\") != NULL ||
	    strpbrk(key.data, "\"\\") != NULL) {
		err_set(&op->e, "cloud-init user, hostname and key must not "
		    "hold quotes or backslashes");
		goto out;
	}
	tmp = getenv("TMPDIR");
	dir = xasprintf("%s/reops-seed.XXXXXX", tmp != NULL && *tmp != '\0' ?
	    tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		err_set(&op->e, "unable to make a directory for the seed: %s",
		    xstrerror(errno));
		free(dir);
		dir = NULL;
		goto out;
	}
	p = xasprintf("%s/user-data", dir);
	sent = write_file(p, ud.data, ud.len);
	free(p);
	p = xasprintf("%s/meta-data", dir);
	if (write_file(p, md.data, md.len) != 0 || sent != 0) {
		err_set(&op->e, "unable to write the seed files: %s",
		    xstrerror(errno));
		free(p);
		goto out;
	}
	free(p);
	if (run_xorriso(op, dir) != 0)
		goto out;
	p = xasprintf("%s/seed.iso", dir);
	sent = read_file(p, &iso);
	free(p);
	if (sent != 0 || iso.len == 0) {
		err_set(&op->e, "unable to read the seed xorriso built");
		goto out;
	}
	xml_printf(&x, "<volume><name>%s</name>", volname);
	buf_printf(&x, "<capacity unit='bytes'>%zu</capacity>"
	    "<target><format type='raw'/></target></volume>", iso.len);
	if ((vol = virStorageVolCreateXML(pool, x.data, 0)) == NULL) {
		virt_err(&op->e, "unable to create volume '%s' in pool '%s'",
		    volname, pool_name(s));
		goto out;
	}
	meta_add_volume(m, pool_name(s), volname);
	if ((stream = virStreamNew(op->conn, 0)) == NULL ||
	    virStorageVolUpload(vol, stream, 0, iso.len, 0) != 0) {
		virt_err(&op->e, "unable to upload the cloud-init seed to "
		    "'%s'", volname);
		goto out;
	}
	for (off = 0; off < iso.len; off += (size_t)sent) {
		if ((sent = virStreamSend(stream, iso.data + off,
		    iso.len - off)) <= 0) {
			virt_err(&op->e, "unable to upload the cloud-init "
			    "seed to '%s'", volname);
			virStreamAbort(stream);
			goto out;
		}
	}
	if (virStreamFinish(stream) != 0) {
		virt_err(&op->e, "unable to upload the cloud-init seed to "
		    "'%s'", volname);
		goto out;
	}
	r = 0;
out:
	if (stream != NULL)
		virStreamFree(stream);
	if (vol != NULL)
		virStorageVolFree(vol);
	if (dir != NULL) {
		p = xasprintf("%s/user-data", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/meta-data", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/seed.iso", dir);
		unlink(p);
		free(p);
		p = xasprintf("%s/xorriso.log", dir);
		unlink(p);
		free(p);
		rmdir(dir);
		free(dir);
	}
	buf_free(&key);
	buf_free(&ud);
	buf_free(&md);
	buf_free(&iso);
	buf_free(&x);
	return r;
}

/* --- the domain ------------------------------------------------------- */

static void
domain_xml(struct buf *x, struct virt_op *op, const char *virttype,
    const struct virt_meta *m, const char *disk, const char *seed)
{
	const struct system	*s = op->sys;

	xml_printf(x, "<domain type='%s'><name>%s</name>\n", virttype,
	    s->name);
	buf_adds(x, "<metadata>");
	meta_element(x, s->name, s->type->name, s->file, m, 0);
	buf_adds(x, "</metadata>\n");
	xml_printf(x, "<memory unit='MiB'>%d</memory><vcpu>%d</vcpu>\n",
	    s->machine.ram, s->machine.cpu);
	buf_adds(x, "<os><type>hvm</type><boot dev='hd'/></os>"
	    "<features><acpi/></features>\n<devices>\n");
	xml_printf(x, "<disk type='volume' device='disk'>"
	    "<driver name='qemu' type='qcow2'/>"
	    "<source pool='%s' volume='%s'/>"
	    "<target dev='vda' bus='virtio'/></disk>\n", pool_name(s), disk);
	if (seed != NULL)
		xml_printf(x, "<disk type='volume' device='cdrom'>"
		    "<driver name='qemu' type='raw'/>"
		    "<source pool='%s' volume='%s'/>"
		    "<target dev='sda' bus='sata'/><readonly/></disk>\n",
		    pool_name(s), seed);
	/* No network named: user-mode networking, as qemu:///session has. */
	if (s->hypervisor.network != NULL)
		xml_printf(x, "<interface type='network'>"
		    "<source network='%s'/><model type='virtio'/>"
		    "</interface>\n", s->hypervisor.network);
	else
		buf_adds(x, "<interface type='user'><model type='virtio'/>"
		    "</interface>\n");
	if (strcmp(virttype, "test") != 0)
		buf_adds(x, "<channel type='unix'><target type='virtio' "
		    "name='org.qemu.guest_agent.0'/></channel>\n"
		    "<serial type='pty'/><console type='pty'/>\n");
	buf_adds(x, "</devices></domain>\n");
}

/*
 * Undoes a create that did not finish: the volumes it made, then the
 * domain. In that order, so that whatever a kill leaves between the two
 * is still a domain whose metadata names its volumes, which destroy
 * removes.
 */
static void
undo_create(struct virt_op *op, virDomainPtr dom, const struct virt_meta *made)
{
	virResetLastError();
	delete_volumes(op->conn, made, NULL);
	if (dom != NULL) {
		if (virDomainUndefine(dom) != 0)
			virResetLastError();
		virDomainFree(dom);
	}
}

/*
 * SIGINT or SIGTERM between two steps: the call under way has finished,
 * and what this create made is removed rather than left half-made.
 */
static int
create_interrupted(struct virt_op *op)
{
	if (!run_interrupted)
		return 0;
	op->code = 130;
	err_set(&op->e, "interrupted while creating '%s'; removed what it "
	    "had made", op->sys->name);
	return 1;
}

/*
 * Creating a system that exists is an error, never a second VM. The
 * domain is defined first, its metadata naming the volumes it is about to
 * get, and only then are they made: a create killed at any point leaves
 * either nothing or a domain of ours that destroy removes with everything
 * its metadata names. Each volume name is checked free before the domain
 * claims it, so destroy never deletes a volume someone else made.
 */
int
virt_create(struct virt_op *op)
{
	const struct system	*s = op->sys;
	virStoragePoolPtr	 pool = NULL;
	virDomainPtr		 dom = NULL;
	struct virt_meta	 plan, made, old;
	struct buf		 x;
	const char		*virttype;
	char			*disk = NULL, *seed = NULL;
	int			 r = -1;

	memset(&plan, 0, sizeof plan);
	memset(&made, 0, sizeof made);
	buf_init(&x);
	if (op->dom != NULL) {
		if (virt_meta_read(op->dom, &old)) {
			err_set(&op->e, "system '%s' already exists on '%s' "
			    "(created from %s)", s->name, s->hypervisor.uri,
			    old.inventory);
			virt_meta_free(&old);
		} else
			err_set(&op->e, "a domain named '%s' already exists "
			    "on '%s' (not created by reops-run)", s->name,
			    s->hypervisor.uri);
		return -1;
	}
	if (s->machine.image == NULL && s->machine.disk == 0) {
		err_set(&op->e, "system '%s' names neither 'image' nor 'disk' "
		    "in its machine", s->name);
		return -1;
	}
	if ((virttype = virt_type(op)) == NULL)
		return -1;
	if ((pool = virStoragePoolLookupByName(op->conn, pool_name(s))) ==
	    NULL) {
		virt_err(&op->e, "no storage pool '%s' on '%s'", pool_name(s),
		    s->hypervisor.uri);
		return -1;
	}
	disk = xasprintf("%s.qcow2", s->name);
	if (s->type->cloud_init)
		seed = xasprintf("%s-seed.iso", s->name);
	if (vol_taken(op, pool, disk) || (seed != NULL &&
	    vol_taken(op, pool, seed)))
		goto out;
	meta_add_volume(&plan, pool_name(s), disk);
	if (seed != NULL)
		meta_add_volume(&plan, pool_name(s), seed);
	domain_xml(&x, op, virttype, &plan, disk, seed);
	log_debug("%s: domain XML:\n%s", s->name, x.data);
	if (create_interrupted(op))
		goto out;
	if ((dom = virDomainDefineXML(op->conn, x.data)) == NULL) {
		virt_err(&op->e, "unable to define '%s'", s->name);
		goto out;
	}
	if (create_interrupted(op) || make_disk(op, pool, disk, &made) != 0)
		goto out;
	if (seed != NULL && (create_interrupted(op) ||
	    make_seed(op, pool, seed, &made) != 0))
		goto out;
	if (create_interrupted(op))
		goto out;
	if (virDomainCreate(dom) != 0) {
		virt_err(&op->e, "unable to start '%s'", s->name);
		goto out;
	}
	buf_printf(&op->note, "created %s on %s (%s)", s->name,
	    s->hypervisor.uri, virttype);
	op->dom = dom;
	dom = NULL;
	r = 0;
out:
	/* ^C reaches xorriso too: its failure is the interrupt's. */
	if (r != 0 && dom != NULL)
		create_interrupted(op);
	if (r != 0)
		undo_create(op, dom, &made);
	virt_meta_free(&plan);
	virt_meta_free(&made);
	if (pool != NULL)
		virStoragePoolFree(pool);
	free(disk);
	free(seed);
	buf_free(&x);
	return r;
}

static int
need_domain(struct virt_op *op)
{
	if (op->dom != NULL)
		return 0;
	err_set(&op->e, "system '%s' does not exist on '%s'", op->sys->name,
	    op->sys->hypervisor.uri);
	return -1;
}

int
virt_start(struct virt_op *op)
{
	int	state;

	if (need_domain(op) != 0)
		return -1;
	state = dom_state(op->dom);
	if (state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED) {
		buf_adds(&op->note, "already running");
		return 0;
	}
	if (state == VIR_DOMAIN_PAUSED) {
		if (virDomainResume(op->dom) != 0)
			return virt_err(&op->e, "unable to resume '%s'",
			    op->sys->name);
		buf_adds(&op->note, "resumed");
		return 0;
	}
	if (virDomainCreate(op->dom) != 0)
		return virt_err(&op->e, "unable to start '%s'", op->sys->name);
	buf_adds(&op->note, "started");
	return 0;
}

/* Asks the guest to shut down; virt_stage waits, then forces it off. */
int
virt_shutdown(struct virt_op *op)
{
	int	state;

	if (need_domain(op) != 0)
		return -1;
	state = dom_state(op->dom);
	if (state == VIR_DOMAIN_SHUTOFF) {
		buf_adds(&op->note, "already shut off");
		return 0;
	}
	if (virDomainShutdown(op->dom) != 0) {
		/* A paused or unresponsive guest cannot shut down by itself. */
		virResetLastError();
		if (virDomainDestroy(op->dom) != 0)
			return virt_err(&op->e, "unable to stop '%s'",
			    op->sys->name);
		buf_adds(&op->note, "forced off (no graceful shutdown)");
		return 0;
	}
	op->asked = 1;
	return 0;
}

/*
 * Forces the domain off, undefines it and deletes the volumes its metadata
 * lists: only what reops-run created. A domain without our metadata is not
 * ours to destroy. A system that does not exist is already destroyed.
 */
int
virt_destroy(struct virt_op *op)
{
	struct virt_meta	m;
	unsigned int		flags;

	if (op->dom == NULL) {
		buf_adds(&op->note, "does not exist");
		return 0;
	}
	if (!virt_meta_read(op->dom, &m)) {
		err_set(&op->e, "domain '%s' on '%s' was not created by "
		    "reops-run; not destroying it", op->sys->name,
		    op->sys->hypervisor.uri);
		return -1;
	}
	if (dom_state(op->dom) != VIR_DOMAIN_SHUTOFF &&
	    virDomainDestroy(op->dom) != 0) {
		virt_meta_free(&m);
		return virt_err(&op->e, "unable to force '%s' off",
		    op->sys->name);
	}
	flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
	    VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
	if (virDomainUndefineFlags(op->dom, flags) != 0) {
		virt_meta_free(&m);
		return virt_err(&op->e, "unable to undefine '%s'",
		    op->sys->name);
	}
	virDomainFree(op->dom);
	op->dom = NULL;
	buf_adds(&op->note, "destroyed");
	delete_volumes(op->conn, &m, &op->note);
	virt_meta_free(&m);
	return 0;
}

int
virt_nothing(struct virt_op *op)
{
	return 0;
}
