/* log.h - route library messages to the caller's log callback; silent by default. */
#ifndef LMRT_BASE_LOG_H
#define LMRT_BASE_LOG_H

#include "base/error.h"

void lmrt_log(int32_t level, const char *fmt, ...) LMRT_PRINTF(2, 3);

#endif
