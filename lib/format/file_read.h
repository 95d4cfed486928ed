/* file_read.h - a whole regular file into memory (format/ decoders). */
#ifndef LMRT_FORMAT_FILE_READ_H
#define LMRT_FORMAT_FILE_READ_H

#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

/* Reads the regular file at `path` into a new lmrt_malloc'd buffer (free with
 * lmrt_mem_free; at least one byte is allocated, so an empty file gives a valid
 * pointer and size 0). LMRT_E_IO names the path and, for a short read, the
 * offset; LMRT_E_NOMEM when the buffer cannot be had. */
lmrt_status format_read_file(const char *path, uint8_t **out, size_t *out_size);

#endif
