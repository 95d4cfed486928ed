/* lmrt.h - the public interface of lmrt, an embeddable runtime for Llama-3-family models.
 *
 * The ABI promise (doc/abi.md): every handle is opaque; every struct the caller
 * fills starts with a `size` field, is set up by its *_init() function, and only
 * ever grows at its end; enum values and status codes never change meaning.
 * Every fallible call returns an lmrt_status and leaves its out-parameters
 * untouched on failure; lmrt_last_error() then names what was wrong.
 * The library never aborts, exits or prints: messages go to the log callback.
 *
 * C99, includes nothing beyond <stdint.h>, <stddef.h> and <stdbool.h>. */
#ifndef LMRT_H
#define LMRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(LMRT_BUILDING) && (defined(__GNUC__) || defined(__clang__))
#define LMRT_API __attribute__((visibility("default")))
#else
#define LMRT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions                                                                 */
/* ------------------------------------------------------------------------ */

/* The ABI version this header describes. A binding compares it with
 * lmrt_abi_version() at load time and refuses to run on a mismatch. */
#define LMRT_ABI_VERSION 0

/* "MAJOR.MINOR.PATCH" of the library that is running. Static storage. */
LMRT_API const char *lmrt_version(void);
/* The ABI version of the library that is running (LMRT_ABI_VERSION at its build). */
LMRT_API int32_t lmrt_abi_version(void);

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

/* Status codes. The numbers are stable forever; new codes are only appended. */
typedef int32_t lmrt_status;
enum {
    LMRT_OK = 0,
    LMRT_E_INVALID_ARG = -1,      /* a NULL handle, a bad value, a malformed region code */
    LMRT_E_NOMEM = -2,            /* an allocation failed; nothing was changed */
    LMRT_E_IO = -3,               /* a file could not be opened, mapped or read */
    LMRT_E_FORMAT = -4,           /* a file or blob is malformed (the message names offset and field) */
    LMRT_E_UNSUPPORTED = -5,      /* valid, but not implemented (yet) by this build */
    LMRT_E_NOT_FOUND = -6,        /* a key, tensor, token or device does not exist */
    LMRT_E_NOT_LICENSED = -7,     /* the modality is not licensed in the context's region */
    LMRT_E_CONTEXT_FULL = -8,     /* the session's context window has no room left */
    LMRT_E_ABORTED = -9,          /* the caller's abort callback asked to stop */
    LMRT_E_BUFFER_TOO_SMALL = -10,/* a caller buffer is too small; nothing was written */
    LMRT_E_MISMATCH = -11,        /* a state blob belongs to another model or format */
    LMRT_E_BACKEND = -12,         /* the compute backend or device failed */
    LMRT_E_INVALID_STATE = -13,   /* the handle cannot do this now (e.g. its model was freed) */
    LMRT_E_INTERNAL = -14         /* a bug in lmrt: please report it with the message */
};

/* A short constant name for a status ("LMRT_E_FORMAT"); never NULL. */
LMRT_API const char *lmrt_status_str(lmrt_status status);

/* The message of the last failed call on this thread, naming what was wrong
 * (file, offset, key, tensor, region). "" when no call has failed yet.
 * Valid until the next lmrt call on the same thread. */
LMRT_API const char *lmrt_last_error(void);

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */

enum {
    LMRT_LOG_ERROR = 0,
    LMRT_LOG_WARN = 1,
    LMRT_LOG_INFO = 2,
    LMRT_LOG_DEBUG = 3
};

/* Receives one complete message, without a trailing newline. May be called
 * from any thread that is inside an lmrt call. */
typedef void (*lmrt_log_fn)(void *user, int32_t level, const char *message);

/* Installs a process-wide log callback for messages at `max_level` or more
 * severe. NULL (the default) drops every message. */
LMRT_API void lmrt_set_log_callback(lmrt_log_fn fn, void *user, int32_t max_level);

/* Frees memory that lmrt handed to the caller (e.g. lmrt_session_save). NULL is fine. */
LMRT_API void lmrt_free(void *ptr);

/* Size-versioned structs: every struct the caller allocates starts with
 * `size_t size` and is prepared by its init function, which is passed the
 * caller's sizeof:
 *     lmrt_model_params p;
 *     lmrt_model_params_init(&p, sizeof p);
 * The init function writes defaults into exactly `size` bytes and stores `size`,
 * so a program built against an older, smaller struct keeps working with a newer
 * library (it simply gets the defaults of the fields it does not know), and a
 * newer program with an older library gets only the fields that library knows. */

/* ------------------------------------------------------------------------ */
/* Modalities, backends, devices                                            */
/* ------------------------------------------------------------------------ */

/* Modalities as bits of a mask. */
enum {
    LMRT_MODALITY_TEXT = 1u << 0,
    LMRT_MODALITY_IMAGE = 1u << 1,
    LMRT_MODALITY_AUDIO = 1u << 2
};
/* Index of a modality in per-modality arrays: text 0, image 1, audio 2. */
#define LMRT_MODALITY_SLOTS 4

/* Backends as bits of a mask; LMRT_BACKEND_AUTO picks the best available. */
enum {
    LMRT_BACKEND_AUTO = 0,
    LMRT_BACKEND_CPU = 1u << 0,
    LMRT_BACKEND_CUDA = 1u << 1
};

typedef struct lmrt_device_info {
    size_t size;                /* sizeof(lmrt_device_info), set by lmrt_device_info_init */
    int32_t backend;            /* LMRT_BACKEND_* */
    int32_t index;              /* index within its backend */
    char name[128];             /* e.g. "NVIDIA H100 80GB HBM3" or the CPU model */
    uint64_t total_memory;      /* bytes */
    uint64_t free_memory;       /* bytes, at the time of the call */
    char description[128];      /* e.g. "sm_90, 132 SMs" or "AVX-512 VNNI BF16" */
} lmrt_device_info;

LMRT_API void lmrt_device_info_init(lmrt_device_info *info, size_t size);
/* Number of devices of one backend (LMRT_BACKEND_CPU or _CUDA). 0 is not an error. */
LMRT_API lmrt_status lmrt_device_count(int32_t backend, int32_t *out_count);
LMRT_API lmrt_status lmrt_device_get_info(int32_t backend, int32_t index, lmrt_device_info *out);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

/* Weights, vocabulary and metadata of one GGUF file (plus an optional
 * projector file). Read-only after load; safe to share between threads. */
typedef struct lmrt_model lmrt_model;

typedef struct lmrt_model_params {
    size_t size;                /* sizeof(lmrt_model_params), set by lmrt_model_params_init */
    const char *projector_path; /* optional mmproj GGUF with image/audio encoders; NULL for none */
    bool use_mmap;              /* map the file (default); false reads it into memory */
} lmrt_model_params;

LMRT_API void lmrt_model_params_init(lmrt_model_params *params, size_t size);

/* Opens and validates a GGUF file. `params` may be NULL for the defaults. */
LMRT_API lmrt_status lmrt_model_load(const char *path, const lmrt_model_params *params,
                                     lmrt_model **out);
/* Loads a GGUF image already in memory. The bytes are not copied: they must
 * stay valid and unchanged until the model is freed. */
LMRT_API lmrt_status lmrt_model_load_memory(const void *data, size_t size,
                                            const lmrt_model_params *params, lmrt_model **out);
/* Loads the model built into the library (stories260K, a 260K-parameter
 * TinyStories Llama), for examples and smoke tests. */
LMRT_API lmrt_status lmrt_model_load_builtin(const lmrt_model_params *params, lmrt_model **out);

/* Drops the caller's reference. Sessions and contexts still open on the model
 * keep its memory alive, but every later call through them fails with
 * LMRT_E_INVALID_STATE. NULL is fine. */
LMRT_API void lmrt_model_free(lmrt_model *model);

typedef struct lmrt_model_info {
    size_t size;                /* sizeof(lmrt_model_info), set by lmrt_model_info_init */
    const char *architecture;   /* general.architecture, e.g. "llama"; owned by the model */
    const char *name;           /* general.name or "" */
    const char *file_type;      /* e.g. "F32", "Q4_0", "Q4_K_M", or "unknown" */
    int64_t n_params;           /* elements over all tensors */
    int64_t n_bytes;            /* bytes of tensor data */
    int32_t n_layer;
    int32_t n_embd;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t n_ff;
    int32_t n_ctx_train;        /* the context length the model was trained for */
    int32_t n_vocab;
    int32_t gguf_version;
    int64_t n_tensors;
    int64_t n_metadata;
    uint32_t modalities;        /* LMRT_MODALITY_* the model has */
} lmrt_model_info;

LMRT_API void lmrt_model_info_init(lmrt_model_info *info, size_t size);
LMRT_API lmrt_status lmrt_model_get_info(const lmrt_model *model, lmrt_model_info *out);

/* Metadata value types, as GGUF numbers them. */
enum {
    LMRT_META_UINT8 = 0, LMRT_META_INT8 = 1, LMRT_META_UINT16 = 2, LMRT_META_INT16 = 3,
    LMRT_META_UINT32 = 4, LMRT_META_INT32 = 5, LMRT_META_FLOAT32 = 6, LMRT_META_BOOL = 7,
    LMRT_META_STRING = 8, LMRT_META_ARRAY = 9, LMRT_META_UINT64 = 10, LMRT_META_INT64 = 11,
    LMRT_META_FLOAT64 = 12
};

/* The key of metadata entry `index` (0 <= index < n_metadata), in file order. */
LMRT_API lmrt_status lmrt_model_meta_key(const lmrt_model *model, int64_t index, const char **out_key);
/* Type of a key's value; for arrays also the element type and count (else -1 and 0). */
LMRT_API lmrt_status lmrt_model_meta_type(const lmrt_model *model, const char *key,
                                          int32_t *out_type, int32_t *out_elem_type,
                                          int64_t *out_count);
/* Typed reads: any integer or bool type reads as int64 (uint64 above INT64_MAX is an
 * error); float types read as double; strings as a NUL-terminated copy owned by the model.
 * A wrong type is LMRT_E_INVALID_ARG; a missing key LMRT_E_NOT_FOUND. */
LMRT_API lmrt_status lmrt_model_meta_int(const lmrt_model *model, const char *key, int64_t *out);
LMRT_API lmrt_status lmrt_model_meta_float(const lmrt_model *model, const char *key, double *out);
LMRT_API lmrt_status lmrt_model_meta_string(const lmrt_model *model, const char *key,
                                            const char **out);
/* Element `index` of an array value, read as above. */
LMRT_API lmrt_status lmrt_model_meta_array_int(const lmrt_model *model, const char *key,
                                               int64_t index, int64_t *out);
LMRT_API lmrt_status lmrt_model_meta_array_float(const lmrt_model *model, const char *key,
                                                 int64_t index, double *out);
/* A string element as bytes (not NUL-terminated, may hold any byte). */
LMRT_API lmrt_status lmrt_model_meta_array_string(const lmrt_model *model, const char *key,
                                                  int64_t index, const char **out_bytes,
                                                  size_t *out_len);
/* Any value rendered as one line of text, arrays shortened to `max_elems`
 * elements, NUL-terminated. When `cap` is too small the call fails with
 * LMRT_E_BUFFER_TOO_SMALL, writes nothing to `buf` and sets only *out_len to the
 * length needed (without the NUL): the one exception to "out-parameters are
 * untouched on failure", shared by every call that fills a caller buffer. */
LMRT_API lmrt_status lmrt_model_meta_format(const lmrt_model *model, const char *key,
                                            int64_t max_elems, char *buf, size_t cap,
                                            size_t *out_len);

/* The tensor table, in file order. */
typedef struct lmrt_tensor_info {
    size_t size;                /* sizeof(lmrt_tensor_info), set by lmrt_tensor_info_init */
    const char *name;           /* owned by the model */
    const char *type_name;      /* "F32", "Q4_K", ... */
    int32_t type;               /* GGML type number */
    int32_t n_dims;
    int64_t dims[4];            /* dims[0] is the contiguous one; unused dims are 1 */
    uint64_t offset;            /* absolute byte offset of the data in the file */
    uint64_t n_bytes;
} lmrt_tensor_info;

LMRT_API void lmrt_tensor_info_init(lmrt_tensor_info *info, size_t size);
LMRT_API lmrt_status lmrt_model_tensor_info(const lmrt_model *model, int64_t index,
                                            lmrt_tensor_info *out);

/* ------------------------------------------------------------------------ */
/* Tokens                                                                   */
/* ------------------------------------------------------------------------ */

enum {
    LMRT_TOKENIZE_ADD_BOS = 1u << 0,      /* prepend BOS when the vocabulary asks for it */
    LMRT_TOKENIZE_PARSE_SPECIAL = 1u << 1 /* "<|eot_id|>" in the text becomes that token */
};
enum {
    LMRT_DETOKENIZE_SPECIAL = 1u << 0     /* render control tokens as their text */
};

/* Text (UTF-8, `len` bytes) to token ids. With out_ids NULL and cap 0 it only
 * counts. A too-small `cap` is LMRT_E_BUFFER_TOO_SMALL with nothing written. */
LMRT_API lmrt_status lmrt_tokenize(const lmrt_model *model, const char *text, size_t len,
                                   uint32_t flags, int32_t *out_ids, size_t cap, size_t *out_n);
/* Token ids to bytes. NUL-terminated when there is room; *out_len excludes the NUL. */
LMRT_API lmrt_status lmrt_detokenize(const lmrt_model *model, const int32_t *ids, size_t n,
                                     uint32_t flags, char *buf, size_t cap, size_t *out_len);

enum {
    LMRT_TOKEN_BOS = 0,
    LMRT_TOKEN_EOS = 1,
    LMRT_TOKEN_EOT = 2,   /* end of turn (<|eot_id|>) */
    LMRT_TOKEN_PAD = 3
};
/* The id of a special token; LMRT_E_NOT_FOUND when the vocabulary has none. */
LMRT_API lmrt_status lmrt_model_special_token(const lmrt_model *model, int32_t which,
                                              int32_t *out_id);
/* Whether a token ends generation (EOS, EOT or another end-of-generation token). */
LMRT_API bool lmrt_model_token_is_eog(const lmrt_model *model, int32_t id);

/* Renders a conversation in the model's chat format (Llama 3:
 * <|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|>), optionally
 * opening the assistant's turn. Output as lmrt_detokenize. */
LMRT_API lmrt_status lmrt_chat_format(const lmrt_model *model, const char *const *roles,
                                      const char *const *contents, size_t n_messages,
                                      bool add_assistant_turn, char *buf, size_t cap,
                                      size_t *out_len);

/* ------------------------------------------------------------------------ */
/* Contexts: backend, threads, region and policy                            */
/* ------------------------------------------------------------------------ */

/* Execution resources for one model: backend and device, threads, scratch
 * memory, and the caller's region with its licensing policy, fixed for the
 * context's life. One context serves many sessions; creating and freeing
 * sessions on it is thread-safe, and each session is used by one thread at a time. */
typedef struct lmrt_context lmrt_context;

typedef struct lmrt_context_params {
    size_t size;                /* sizeof(lmrt_context_params), set by lmrt_context_params_init */
    const char *region;         /* ISO 3166-1 alpha-2 code ("US", "DE"); NULL or "" = unknown,
                                   which licenses only what is licensed everywhere */
    const char *policy;         /* deployer policy text (doc/licensing.md), may only narrow; NULL */
    int32_t backend;            /* LMRT_BACKEND_AUTO (default), _CPU or _CUDA */
    int32_t device;             /* device index within the backend; default 0 */
    int32_t n_threads;          /* CPU threads; 0 = one per core */
    /* Input budgets, checked before anything is allocated for an input: an image
     * of more than max_image_pixels (width x height) or audio of more than
     * max_audio_samples (per channel, at the file's own rate) is refused with
     * LMRT_E_FORMAT. 0 = the defaults below. */
    int64_t max_image_pixels;
    int64_t max_audio_samples;
} lmrt_context_params;

#define LMRT_DEFAULT_MAX_IMAGE_PIXELS ((int64_t)1 << 25)        /* 33.5 Mpx, e.g. 8192 x 4096 */
#define LMRT_DEFAULT_MAX_AUDIO_SAMPLES ((int64_t)48000 * 60 * 30) /* 30 minutes at 48 kHz */

LMRT_API void lmrt_context_params_init(lmrt_context_params *params, size_t size);
LMRT_API lmrt_status lmrt_context_create(lmrt_model *model, const lmrt_context_params *params,
                                         lmrt_context **out);
LMRT_API void lmrt_context_free(lmrt_context *ctx);

/* What a context has bound to its backend so far. Weights are bound on first
 * use: the decoder with the first session, an encoder with the first image or
 * audio fed -- and an encoder only where its modality is licensed, so that a
 * context in a region without images never maps the vision weights in. */
typedef struct lmrt_context_info {
    size_t size;                /* sizeof(lmrt_context_info), set by lmrt_context_info_init */
    uint32_t modalities_licensed; /* LMRT_MODALITY_* this context may use */
    uint32_t modalities_bound;  /* LMRT_MODALITY_* whose weights are bound now */
    /* Weight tensors bound per modality, indexed 0 text, 1 image, 2 audio. */
    int64_t tensors_bound[LMRT_MODALITY_SLOTS];
    int32_t backend;            /* LMRT_BACKEND_CPU or _CUDA */
    int32_t device;
    int32_t n_threads;
} lmrt_context_info;

LMRT_API void lmrt_context_info_init(lmrt_context_info *info, size_t size);
LMRT_API lmrt_status lmrt_context_get_info(const lmrt_context *ctx, lmrt_context_info *out);

/* ------------------------------------------------------------------------ */
/* Capabilities: what a model may do in a region, and what the runtime offers */
/* ------------------------------------------------------------------------ */

typedef struct lmrt_capabilities {
    size_t size;                /* sizeof(lmrt_capabilities), set by lmrt_capabilities_init */
    char region[8];             /* the region asked about, upper-cased; "" when unset */
    bool region_known;          /* false for an unset or unassigned code (fail closed) */
    bool region_in_eu;
    uint32_t modalities_present;  /* LMRT_MODALITY_* the model has */
    uint32_t modalities_licensed; /* the subset licensed in the region */
    /* Why each present-but-withheld modality is withheld ("" otherwise),
     * indexed 0 text, 1 image, 2 audio. */
    char withheld_reason[LMRT_MODALITY_SLOTS][256];
    char version[32];           /* lmrt_version() */
    uint32_t backends;          /* LMRT_BACKEND_* compiled in and usable */
    char cpu_simd[64];          /* the kernels chosen for this CPU, e.g. "avx512-vnni-bf16" */
    int32_t n_cuda_devices;
} lmrt_capabilities;

LMRT_API void lmrt_capabilities_init(lmrt_capabilities *caps, size_t size);
/* Capabilities of `model` in `region` under the default and the model's own policy. */
LMRT_API lmrt_status lmrt_query_capabilities(const lmrt_model *model, const char *region,
                                             lmrt_capabilities *out);
/* The same for a context: its region, with the deployer policy applied too. */
LMRT_API lmrt_status lmrt_context_capabilities(const lmrt_context *ctx, lmrt_capabilities *out);

/* ------------------------------------------------------------------------ */
/* Sessions: one conversation                                               */
/* ------------------------------------------------------------------------ */

/* Token history, KV cache, media already fed and sampler state of one
 * conversation. Used by one thread at a time. */
typedef struct lmrt_session lmrt_session;

typedef struct lmrt_session_params {
    size_t size;                /* sizeof(lmrt_session_params), set by lmrt_session_params_init */
    int32_t n_ctx;              /* context window; 0 = the model's, capped by the library */
    bool keep_all_logits;       /* keep logits of every fed position, not just the last */
} lmrt_session_params;

LMRT_API void lmrt_session_params_init(lmrt_session_params *params, size_t size);
LMRT_API lmrt_status lmrt_session_create(lmrt_context *ctx, const lmrt_session_params *params,
                                         lmrt_session **out);
LMRT_API void lmrt_session_free(lmrt_session *session);
/* An independent copy of a session's whole state. */
LMRT_API lmrt_status lmrt_session_fork(const lmrt_session *session, lmrt_session **out);
/* Forgets everything fed; keeps the sampler settings. */
LMRT_API lmrt_status lmrt_session_reset(lmrt_session *session);

/* Feeding. Each call runs the decoder over the new positions. */
LMRT_API lmrt_status lmrt_session_feed_text(lmrt_session *session, const char *text,
                                            uint32_t tokenize_flags);
LMRT_API lmrt_status lmrt_session_feed_tokens(lmrt_session *session, const int32_t *ids,
                                              size_t n);
/* A conversation in the model's chat format (see lmrt_chat_format). */
LMRT_API lmrt_status lmrt_session_feed_chat(lmrt_session *session, const char *const *roles,
                                            const char *const *contents, size_t n_messages,
                                            bool add_assistant_turn);
/* Images: an encoded file (PNG, PPM, JPEG where built), encoded bytes, or raw
 * RGB8 rows. The region policy is checked before anything is decoded. */
LMRT_API lmrt_status lmrt_session_feed_image_file(lmrt_session *session, const char *path);
LMRT_API lmrt_status lmrt_session_feed_image_encoded(lmrt_session *session, const void *data,
                                                     size_t size);
LMRT_API lmrt_status lmrt_session_feed_image_rgb(lmrt_session *session, const uint8_t *rgb,
                                                 int32_t width, int32_t height,
                                                 size_t row_stride);
/* Audio: a WAV file or bytes, or mono float PCM at any sample rate. */
LMRT_API lmrt_status lmrt_session_feed_audio_file(lmrt_session *session, const char *path);
LMRT_API lmrt_status lmrt_session_feed_audio_encoded(lmrt_session *session, const void *data,
                                                     size_t size);
LMRT_API lmrt_status lmrt_session_feed_audio_pcm(lmrt_session *session, const float *samples,
                                                 size_t n_samples, int32_t sample_rate);

/* The logits of the last feed: [*out_rows][*out_n_vocab] floats, one row per fed
 * position with keep_all_logits, else the last position only. Valid until the
 * session is next changed. */
LMRT_API lmrt_status lmrt_session_logits(const lmrt_session *session, const float **out_logits,
                                         int64_t *out_rows, int32_t *out_n_vocab);
/* Tokens in the context so far. */
LMRT_API lmrt_status lmrt_session_n_tokens(const lmrt_session *session, int64_t *out_n);

/* ------------------------------------------------------------------------ */
/* Sampling and generation                                                  */
/* ------------------------------------------------------------------------ */

typedef struct lmrt_sampler_params {
    size_t size;                /* sizeof(lmrt_sampler_params), set by lmrt_sampler_params_init */
    float temperature;          /* 0 = greedy (default 0.8) */
    int32_t top_k;              /* 0 = off (default 40) */
    float top_p;                /* 1 = off (default 0.95) */
    float min_p;                /* 0 = off (default 0.05) */
    float repeat_penalty;       /* 1 = off (default) */
    int32_t repeat_last_n;      /* tokens the penalties look back over (default 64) */
    float frequency_penalty;    /* 0 = off (default) */
    float presence_penalty;     /* 0 = off (default) */
    uint64_t seed;              /* same seed, same tokens, at any thread count (default 0) */
} lmrt_sampler_params;

LMRT_API void lmrt_sampler_params_init(lmrt_sampler_params *params, size_t size);
LMRT_API lmrt_status lmrt_session_set_sampler(lmrt_session *session,
                                              const lmrt_sampler_params *params);

/* Samples one token from the current logits and feeds it. `text` receives the
 * bytes this token completes (UTF-8 safe: a partial character waits for the next
 * token), NUL-terminated; pass NULL/0 to skip it. The buffer must hold the
 * session's longest possible piece (256 bytes is plenty for Llama vocabularies);
 * a smaller one fails with LMRT_E_BUFFER_TOO_SMALL before anything is sampled,
 * setting *out_len to the size needed. End-of-generation tokens give no text. */
LMRT_API lmrt_status lmrt_session_next_token(lmrt_session *session, int32_t *out_token,
                                             char *text, size_t cap, size_t *out_len);

/* Called with each generated token and the text now safe to show (it may be
 * empty: a partial UTF-8 character, or text that could still become a stop
 * string, waits). Text released after the last token comes with token -1.
 * Return false to stop. */
typedef bool (*lmrt_token_fn)(void *user, int32_t token, const char *text, size_t len);
/* Polled between tokens and between layers; return true to abort. */
typedef bool (*lmrt_abort_fn)(void *user);

enum {
    LMRT_STOP_NONE = 0,
    LMRT_STOP_EOG = 1,          /* an end-of-generation token */
    LMRT_STOP_MAX_TOKENS = 2,
    LMRT_STOP_STRING = 3,       /* one of the stop strings appeared */
    LMRT_STOP_CALLBACK = 4      /* the token callback returned false */
};

typedef struct lmrt_generate_params {
    size_t size;                /* sizeof(lmrt_generate_params), set by lmrt_generate_params_init */
    int32_t max_tokens;         /* default 256; 0 generates nothing */
    const char *const *stop;    /* stop strings; the text up to them is delivered */
    size_t n_stop;
    lmrt_token_fn on_token;
    lmrt_abort_fn should_abort;
    void *user;                 /* passed to both callbacks */
} lmrt_generate_params;

LMRT_API void lmrt_generate_params_init(lmrt_generate_params *params, size_t size);
/* Generates until a stop condition; *out_stop_reason gets LMRT_STOP_*. An abort
 * returns LMRT_E_ABORTED; the tokens delivered so far stay in the session. */
LMRT_API lmrt_status lmrt_session_generate(lmrt_session *session,
                                           const lmrt_generate_params *params,
                                           int32_t *out_stop_reason);

/* ------------------------------------------------------------------------ */
/* Saving and restoring session state                                       */
/* ------------------------------------------------------------------------ */

/* Serialises the whole session (tokens, KV cache, sampler) to a zlib-compressed
 * blob with magic, format version, model hash and CRC32. Free it with lmrt_free. */
LMRT_API lmrt_status lmrt_session_save(const lmrt_session *session, void **out_data,
                                       size_t *out_size);
/* A new session on `ctx` from a blob. A blob of another model is LMRT_E_MISMATCH,
 * a damaged one LMRT_E_FORMAT. */
LMRT_API lmrt_status lmrt_session_restore(lmrt_context *ctx, const void *data, size_t size,
                                          lmrt_session **out);

#ifdef __cplusplus
}
#endif

#endif /* LMRT_H */
