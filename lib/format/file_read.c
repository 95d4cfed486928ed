/* file_read.c - reads a whole regular file into memory for the decoders that
 * take bytes (images, WAV). Knows nothing about what the bytes are. */
#include "format/file_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"

lmrt_status format_read_file(const char *path, uint8_t **out, size_t *out_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lmrt_fail(LMRT_E_IO, "%s: cannot open: %s", path, strerror(errno));
    lmrt_status st = LMRT_OK;
    uint8_t *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = lmrt_fail(LMRT_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = lmrt_fail(LMRT_E_IO, "%s: not a regular file", path);
        goto done;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX - 1) {
        st = lmrt_fail(LMRT_E_IO, "%s: too large for this address space", path);
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    if (!(buf = lmrt_malloc(size ? size : 1))) {
        st = lmrt_fail(LMRT_E_NOMEM, "%s: out of memory reading %zu bytes", path, size);
        goto done;
    }
    for (size_t got = 0; got < size;) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = lmrt_fail(LMRT_E_IO, "%s: offset %zu: read failed: %s", path, got,
                           strerror(errno));
            goto done;
        }
        if (n == 0) {
            st = lmrt_fail(LMRT_E_IO, "%s: offset %zu: file ended early (expected %zu bytes)",
                           path, got, size);
            goto done;
        }
        got += (size_t)n;
    }
    *out = buf;
    *out_size = size;
    buf = NULL;
done:
    lmrt_mem_free(buf);
    close(fd);
    return st;
}
