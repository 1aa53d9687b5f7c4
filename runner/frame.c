/*
 * frame.c: encoder and decoder of the reops-agent wire format (frame.h).
 * Each type's fields are one short string in frame_specs[]: '1' a u8, '4'
 * a u32, 'b' length-prefixed bytes. Both directions use the same table,
 * so the agent and the runner cannot disagree about a layout.
 */
#include <stdio.h>
#include <string.h>

#include "frame.h"

struct frame_spec {
	uint8_t		 type;
	const char	*name;
	const char	*fields;
};

static const struct frame_spec frame_specs[] = {
	{ FRAME_EXEC,		"exec",		"4b" },
	{ FRAME_PUT_FILE,	"put-file",	"4bb" },
	{ FRAME_FACTS,		"facts",	"" },
	{ FRAME_PING,		"ping",		"" },
	{ FRAME_KILL,		"kill",		"4" },
	{ FRAME_EXEC_INPUT,	"exec-input",	"4bb" },
	{ FRAME_OUTPUT,		"output",	"1b" },
	{ FRAME_EXIT,		"exit",		"444" },
	{ FRAME_ERROR,		"error",	"4b" },
	{ FRAME_RESULT,		"result",	"b" },
	{ FRAME_KEEPALIVE,	"keepalive",	"" },
};

static const char *const frame_error_names[] = {
	[FRAME_EOK] = "ok",
	[FRAME_EVERSION] = "unsupported version",
	[FRAME_ETYPE] = "unknown request type",
	[FRAME_EMALFORMED] = "malformed request",
	[FRAME_ETOOBIG] = "message too large",
	[FRAME_EBUSY] = "agent busy",
	[FRAME_ENOREQUEST] = "no such request",
	[FRAME_EDUPLICATE] = "request id in use",
	[FRAME_EFAILED] = "request failed",
	[FRAME_EREVOKED] = "key no longer authorized",
};

static const struct frame_spec *
frame_spec(uint8_t type)
{
	size_t	i;

	for (i = 0; i < nitems(frame_specs); i++)
		if (frame_specs[i].type == type)
			return &frame_specs[i];
	return NULL;
}

const char *
frame_type_name(uint8_t type)
{
	const struct frame_spec	*s;

	return (s = frame_spec(type)) != NULL ? s->name : "unknown";
}

const char *
frame_error_name(uint32_t code)
{
	if (code < nitems(frame_error_names) && frame_error_names[code] != NULL)
		return frame_error_names[code];
	return "unknown error";
}

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put_u32(struct buf *b, uint32_t v)
{
	unsigned char	p[4];

	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	buf_add(b, p, sizeof p);
}

static int
has_nul(const struct frame_bytes *b)
{
	return b->len > 0 && memchr(b->p, '\0', b->len) != NULL;
}

/* What each type demands of its values beyond their layout. */
static int
frame_check(const struct frame *f, char *why, size_t whylen)
{
	switch (f->type) {
	case FRAME_EXEC:
	case FRAME_EXEC_INPUT:
		if (f->b[0].len == 0 || f->b[0].len > FRAME_COMMAND_MAX ||
		    has_nul(&f->b[0])) {
			snprintf(why, whylen, "exec: command is empty, too "
			    "long or holds a NUL byte");
			return -1;
		}
		break;
	case FRAME_PUT_FILE:
		if (f->u[0] > 07777) {
			snprintf(why, whylen, "put-file: mode %o is out of "
			    "range", (unsigned)f->u[0]);
			return -1;
		}
		if (f->b[0].len < 2 || f->b[0].len > FRAME_PATH_MAX ||
		    f->b[0].p[0] != '/' || f->b[0].p[f->b[0].len - 1] == '/' ||
		    has_nul(&f->b[0])) {
			snprintf(why, whylen, "put-file: path is not an "
			    "absolute file name");
			return -1;
		}
		break;
	case FRAME_OUTPUT:
		if (f->u[0] != FRAME_STDOUT && f->u[0] != FRAME_STDERR) {
			snprintf(why, whylen, "output: stream %u is neither "
			    "stdout nor stderr", (unsigned)f->u[0]);
			return -1;
		}
		break;
	}
	return 0;
}

int
frame_decode(struct frame *f, const void *data, size_t len, char *why,
    size_t whylen)
{
	const unsigned char	*p = data, *end = p + len;
	const struct frame_spec	*s;
	const char		*c;
	uint32_t		 n;

	memset(f, 0, sizeof *f);
	snprintf(why, whylen, "ok");
	if (len < FRAME_HEADER) {
		snprintf(why, whylen, "%zu bytes is shorter than a header",
		    len);
		return FRAME_EMALFORMED;
	}
	f->version = p[0];
	f->type = p[1];
	f->id = get_u32(p + 2);
	p += FRAME_HEADER;
	if (f->version != FRAME_VERSION) {
		snprintf(why, whylen, "version %u, this agent speaks %u",
		    f->version, FRAME_VERSION);
		return FRAME_EVERSION;
	}
	if ((s = frame_spec(f->type)) == NULL) {
		snprintf(why, whylen, "type %u", f->type);
		return FRAME_ETYPE;
	}
	for (c = s->fields; *c != '\0'; c++) {
		switch (*c) {
		case '1':
			if (end - p < 1)
				goto short_frame;
			f->u[f->nu++] = *p++;
			break;
		case '4':
			if (end - p < 4)
				goto short_frame;
			f->u[f->nu++] = get_u32(p);
			p += 4;
			break;
		case 'b':
			if (end - p < 4)
				goto short_frame;
			n = get_u32(p);
			p += 4;
			if ((size_t)(end - p) < n)
				goto short_frame;
			f->b[f->nb].p = p;
			f->b[f->nb++].len = n;
			p += n;
			break;
		}
	}
	if (p != end) {
		snprintf(why, whylen, "%s: %zu bytes after the last field",
		    s->name, (size_t)(end - p));
		return FRAME_EMALFORMED;
	}
	if (frame_check(f, why, whylen) == -1)
		return FRAME_EMALFORMED;
	return FRAME_EOK;

 short_frame:
	snprintf(why, whylen, "%s: field %zu is cut short", s->name,
	    (size_t)(c - s->fields) + 1);
	return FRAME_EMALFORMED;
}

int
frame_encode(struct buf *out, uint8_t type, uint32_t id, const uint32_t *u,
    size_t nu, const struct frame_bytes *b, size_t nb)
{
	const struct frame_spec	*s;
	const char		*c;
	size_t			 iu = 0, ib = 0;

	if ((s = frame_spec(type)) == NULL)
		return -1;
	for (c = s->fields; *c != '\0'; c++) {
		if (*c == 'b')
			ib++;
		else
			iu++;
	}
	if (iu != nu || ib != nb)
		return -1;
	for (ib = 0; ib < nb; ib++)
		if (b[ib].len > UINT32_MAX)
			return -1;
	buf_addc(out, FRAME_VERSION);
	buf_addc(out, (char)type);
	put_u32(out, id);
	iu = ib = 0;
	for (c = s->fields; *c != '\0'; c++) {
		switch (*c) {
		case '1':
			buf_addc(out, (char)(u[iu++] & 0xff));
			break;
		case '4':
			put_u32(out, u[iu++]);
			break;
		case 'b':
			put_u32(out, (uint32_t)b[ib].len);
			if (b[ib].len > 0)
				buf_add(out, b[ib].p, b[ib].len);
			ib++;
			break;
		}
	}
	return 0;
}
