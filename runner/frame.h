/*
 * frame.h: the reops-agent wire format, shared by the agent and the
 * runner. One ZeroMQ message frame per request or reply:
 *
 *	version (u8) | type (u8) | request id (u32) | fields...
 *
 * Integers are big-endian; each field is a u8, a u32, or bytes prefixed by
 * their u32 length. Which fields a type carries, in what order, is fixed
 * in one table in frame.c; reops-agent(8) documents it. The decoder checks
 * everything and never reads past its input, so it is safe on any bytes
 * (fuzz/fuzz-frame.c). Nothing here knows about ZeroMQ.
 */
#ifndef REOPS_FRAME_H
#define REOPS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define FRAME_VERSION		1
#define FRAME_HEADER		6	/* version, type, request id */
#define FRAME_MAX_FIELDS	4
#define FRAME_PATH_MAX		4096
#define FRAME_COMMAND_MAX	(1024 * 1024)

/* Request types (runner to agent) and reply types (agent to runner). */
enum frame_type {
	FRAME_EXEC = 1,		/* u32 deadline ms (0: none), bytes command */
	FRAME_PUT_FILE = 2,	/* u32 mode, bytes path, bytes content */
	FRAME_FACTS = 3,	/* nothing */
	FRAME_PING = 4,		/* nothing */
	FRAME_KILL = 5,		/* u32 request id to kill */
	FRAME_EXEC_INPUT = 6,	/* exec with stdin: u32 deadline ms, bytes
				   command, bytes stdin */
	FRAME_REQUEST_LAST = FRAME_EXEC_INPUT,

	FRAME_OUTPUT = 0x81,	/* u8 stream (1 stdout, 2 stderr), bytes data */
	FRAME_EXIT = 0x82,	/* u32 code, u32 signal, u32 duration ms */
	FRAME_ERROR = 0x83,	/* u32 error code, bytes message */
	FRAME_RESULT = 0x84,	/* bytes text: the answer of put-file, facts,
				   ping and kill */
	FRAME_KEEPALIVE = 0x85	/* nothing; sent while requests run */
};

/* Error codes of FRAME_ERROR, stable and documented. */
enum frame_error {
	FRAME_EOK = 0,
	FRAME_EVERSION = 1,	/* a version this agent does not speak */
	FRAME_ETYPE = 2,	/* an unknown request type */
	FRAME_EMALFORMED = 3,	/* fields missing, extra, or out of range */
	FRAME_ETOOBIG = 4,	/* the message is over the size limit */
	FRAME_EBUSY = 5,	/* the queue is full */
	FRAME_ENOREQUEST = 6,	/* kill: no such running request */
	FRAME_EDUPLICATE = 7,	/* that request id is still running */
	FRAME_EFAILED = 8,	/* the request could not be carried out */
	FRAME_EREVOKED = 9,	/* the runner's key was removed on SIGHUP */
	FRAME_ELAST = FRAME_EREVOKED
};

#define FRAME_STDOUT	1
#define FRAME_STDERR	2

struct frame_bytes {
	const unsigned char	*p;
	size_t			 len;
};

/*
 * A decoded frame. Byte fields point into the decoder's input, which must
 * outlive the frame.
 */
struct frame {
	uint8_t			 version;
	uint8_t			 type;
	uint32_t		 id;
	uint32_t		 u[FRAME_MAX_FIELDS];	/* u8 and u32 fields */
	struct frame_bytes	 b[FRAME_MAX_FIELDS];	/* bytes fields */
	size_t			 nu, nb;
};

/*
 * Decodes len bytes. Returns FRAME_EOK, or an error code with a short
 * reason in why (at least 128 bytes); f->id is set whenever the input has
 * a whole header, so that an error reply can name the request.
 */
int		 frame_decode(struct frame *, const void *, size_t, char *,
		    size_t);

/*
 * Encodes a frame of type with the given u and b fields (in the order of
 * the type's entry in the table) onto out. Returns -1 for a type without
 * an entry or a field count that does not match it.
 */
int		 frame_encode(struct buf *, uint8_t, uint32_t,
		    const uint32_t *, size_t, const struct frame_bytes *, size_t);

const char	*frame_type_name(uint8_t);
const char	*frame_error_name(uint32_t);

#endif
