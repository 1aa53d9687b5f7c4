/*
 * stage-provision.c: "provision" runs each system's type's provision
 * pipeline on the system, over ssh to its ip with the type's auth: the
 * system rows become host rows of that pipeline for as long as it runs,
 * and take back its status, output and columns.
 *
 * The host key of a system that reops-run created is pinned on first
 * contact (accept-new: the VM is ours and new), then checked strictly;
 * any other domain's key must be known already.
 */
#include <stdlib.h>
#include <string.h>

#include "virt.h"

static const struct stage_key provision_keys[] = {
	{ NULL, 0, 0 }
};

/* Only a running system with an address and a provision pipeline. */
static int
provision_check(struct virt_op *op)
{
	char	ip[64];
	int	state, reason;

	if (op->sys->type->provision == NULL)
		return err_set(&op->e, "type '%s' names no 'provision' "
		    "pipeline", op->sys->type->name);
	if (op->dom == NULL)
		return err_set(&op->e, "system '%s' does not exist on '%s'",
		    op->sys->name, op->sys->hypervisor.uri);
	if (virDomainGetState(op->dom, &state, &reason, 0) != 0 ||
	    state != VIR_DOMAIN_RUNNING)
		return err_set(&op->e, "system '%s' is not running",
		    op->sys->name);
	if (virt_ip(op->dom, op->sys, ip, sizeof ip) != 0)
		return err_set(&op->e, "system '%s' has no ip yet (DHCP "
		    "leases, guest agent, ARP)", op->sys->name);
	op->later = 1;		/* final after its pipeline: provision_type */
	return 0;
}

static void
fail_row(struct row *r, const char *msg)
{
	r->status = ST_FAILED;
	r->code = 1;
	buf_printf(&r->err, "reops-run: %s\n", msg);
}

/* The provision pipeline's results, back into the system's row. */
static void
take_back(struct table *t, struct row *sr, const struct table *sub)
{
	const struct row	*hr = NULL;
	size_t			 i;

	for (i = 0; i < sub->n; i++)
		if (strcmp(sub->rows[i]->target, sr->target) == 0)
			hr = sub->rows[i];
	if (hr == NULL) {
		/* A pick in the provision pipeline dropped it. */
		sr->status = ST_SKIPPED;
		buf_adds(&sr->err, "reops-run: the provision pipeline "
		    "dropped this system\n");
		return;
	}
	sr->status = hr->status;
	sr->code = hr->code;
	buf_reset(&sr->out);
	buf_reset(&sr->err);
	buf_add(&sr->out, hr->out.data, hr->out.len);
	buf_add(&sr->err, hr->err.data, hr->err.len);
	sr->duration_ms += hr->duration_ms;
	for (i = 0; i < hr->ncols; i++)
		row_set(t, sr, hr->cols[i].name, hr->cols[i].value.data,
		    hr->cols[i].value.len);
}

/*
 * Every provision pipeline that a run may need is loaded and checked with
 * the others, before anything runs (provision_preload), so a bad one is
 * an exit 2 and never a half-run lifecycle. They live in this stage's
 * per-run state slot until the run ends (provision_free).
 */
struct provision_set {
	const struct type	**types;
	struct pipeline		**pipelines;
	size_t			  n;
};

#define PROVISION_SLOT(run)	((run)->stage_state[STAGE_ID_provision])

static struct pipeline *
provision_pipeline(struct run *run, const struct type *ty)
{
	struct provision_set	*ps = PROVISION_SLOT(run);
	size_t			 i;

	if (ps == NULL)
		return NULL;
	for (i = 0; i < ps->n; i++)
		if (ps->types[i] == ty)
			return ps->pipelines[i];
	return NULL;
}

static int
load_type_pipeline(struct run *run, const struct type *ty, struct err *e)
{
	struct provision_set	*ps;
	struct overrides	 ov;
	struct pipeline		*p;
	char			*path;
	int			 r;

	if (ty->provision == NULL)
		return node_err(e, ty->where, "type '%s' names no 'provision' "
		    "pipeline, and a pipeline provisions its systems",
		    ty->name);
	if (ty->provision[0] == '/' || ty->provision_base == NULL)
		path = xstrdup(ty->provision);
	else
		path = xasprintf("%s/%s", ty->provision_base, ty->provision);
	memset(&ov, 0, sizeof ov);
	r = pipeline_load(path, &ov, &p, e);
	if (r != 0 && !e->located)
		node_err(e, ty->where, "provision pipeline of type '%s': %s",
		    ty->name, e->msg);
	else if (r == 0 && p->kind != SEL_HOSTS) {
		err_at(e, p->file, 1, 1, "a provision pipeline runs on "
		    "'hosts', not 'systems'");
		pipeline_free(p);
		r = -1;
	}
	free(path);
	if (r != 0)
		return -1;
	if ((ps = PROVISION_SLOT(run)) == NULL)
		PROVISION_SLOT(run) = ps = xcalloc(1, sizeof *ps);
	ps->types = xgrow(ps->types, ps->n, sizeof *ps->types);
	ps->pipelines = xgrow(ps->pipelines, ps->n,
	    sizeof *ps->pipelines);
	ps->types[ps->n] = ty;
	ps->pipelines[ps->n] = p;
	ps->n++;
	return 0;
}

/* The pipeline of each target's type, once per type. */
static int
provision_preload(struct run *run, const struct pipeline *p,
    const struct stage *st, const struct target *t, size_t n,
    struct err *e)
{
	const struct type	*ty;
	size_t			 i;

	(void)st;
	if (p->kind != SEL_SYSTEMS)
		return 0;
	for (i = 0; i < n; i++) {
		ty = t[i].system->type;
		if (provision_pipeline(run, ty) == NULL &&
		    load_type_pipeline(run, ty, e) != 0)
			return -1;
	}
	return 0;
}

static void
provision_free(struct run *run)
{
	struct provision_set	*ps = PROVISION_SLOT(run);
	size_t			 i;

	if (ps == NULL)
		return;
	for (i = 0; i < ps->n; i++)
		pipeline_free(ps->pipelines[i]);
	free(ps->types);
	free(ps->pipelines);
	free(ps);
	PROVISION_SLOT(run) = NULL;
}

static const struct system *
sys_of(const struct table *t, const char *name)
{
	size_t	i;

	for (i = 0; i < t->n; i++)
		if (t->rows[i]->system != NULL &&
		    strcmp(t->rows[i]->system->name, name) == 0)
			return t->rows[i]->system;
	return NULL;
}

static int
provision_type(struct run *run, struct table *t, const struct type *ty)
{
	struct err		 e;
	struct pipeline		*p;
	struct table		*sub;
	struct row		*sr, *hr;
	const char		*ip, *managed;
	char			 num[ROW_NUM_LEN];
	size_t			 i, len;
	int			 r = 0;

	if ((p = provision_pipeline(run, ty)) == NULL) {
		/* provision_preload saw to every type the targets have. */
		for (i = 0; i < t->n; i++) {
			sr = t->rows[i];
			if (sr->status == ST_OK && sr->system != NULL &&
			    sr->system->type == ty) {
				fail_row(sr, "no provision pipeline was loaded "
				    "for this type");
				run_row_done(run, sr);
			}
		}
		return 0;
	}
	sub = table_new();
	for (i = 0; i < t->n; i++) {
		sr = t->rows[i];
		if (sr->status != ST_OK || sr->system == NULL ||
		    sr->system->type != ty)
			continue;
		ip = row_value(sr, "ip", num, &len);
		managed = row_value(sr, "managed", num, &len);
		hr = table_add(sub, sr->target, ROW_HOST, ty->name);
		hr->host = virt_host(run, sr->system, ip != NULL ? ip : "",
		    managed != NULL && strcmp(managed, "yes") == 0);
	}
	log_debug("%s: provisioning %zu systems of type '%s'", p->file,
	    sub->n, ty->name);
	if (sub->n > 0 && run_pipeline(run, p, sub) != 0)
		r = -1;
	/* Keys met for the first time are pinned in their domains. */
	for (i = 0; i < sub->n; i++) {
		hr = sub->rows[i];
		if (virt_pin_save(run, hr->host, sys_of(t, hr->target),
		    &e) != 0) {
			hr->status = ST_FAILED;
			hr->code = 1;
			buf_printf(&hr->err, "reops-run: %s\n", e.msg);
		}
	}
	for (i = 0; i < t->n; i++) {
		sr = t->rows[i];
		if (sr->status == ST_OK && sr->system != NULL &&
		    sr->system->type == ty) {
			take_back(t, sr, sub);
			run_row_done(run, sr);
		}
	}
	table_free(sub);
	return r;
}

static int
provision_system(struct run *run, struct stage *st, struct table *t)
{
	const struct type	**done;
	size_t			  i, k, ndone = 0;
	int			  r = 0;

	if (virt_stage(run, st, t, provision_check, WAIT_NONE, 0) != 0)
		return -1;
	/* One run of each type's pipeline, on all its systems at once. */
	done = xcalloc(t->n + 1, sizeof *done);
	for (i = 0; i < t->n && !run_interrupted; i++) {
		if (t->rows[i]->status != ST_OK || t->rows[i]->system == NULL)
			continue;
		for (k = 0; k < ndone; k++)
			if (done[k] == t->rows[i]->system->type)
				break;
		if (k < ndone)
			continue;
		done[ndone++] = t->rows[i]->system->type;
		if (provision_type(run, t, t->rows[i]->system->type) != 0)
			r = -1;
	}
	free(done);
	return r;
}

const struct stage_entry stage_provision_entry = {
	.name = "provision",
	.usage = "provision",
	.summary = "run each system's type's provision pipeline on it, by ssh",
	.keys = provision_keys,
	.columns = virt_columns,
	.preload = provision_preload,
	.free_run = provision_free,
	.system = provision_system,
};
