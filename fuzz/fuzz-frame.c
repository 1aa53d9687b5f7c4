/*
 * fuzz-frame.c: libFuzzer harness for the reops-agent frame decoder. Any
 * bytes must decode to an error code or to a frame that encodes back to
 * the very same bytes; nothing may read out of bounds.
 */
/* fuzz-sources: runner/frame.c runner/util.c runner/secret.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame	 f;
	struct buf	 out;
	char		 why[256];
	int		 r;

	r = frame_decode(&f, data, size, why, sizeof why);
	if (r < FRAME_EOK || r > FRAME_ELAST || why[0] == '\0')
		abort();
	if (r != FRAME_EOK)
		return 0;
	buf_init(&out);
	if (frame_encode(&out, f.type, f.id, f.u, f.nu, f.b, f.nb) == -1)
		abort();
	if (out.len != size || memcmp(out.data, data, size) != 0)
		abort();
	buf_free(&out);
	return 0;
}
