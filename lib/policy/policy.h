/* policy.h - layered region licensing: which modalities are licensed where, and why not.
 * A layer is a list of rules (deny a modality in some regions, or allow it only in
 * some); a modality is licensed only where every rule of every layer licenses it, so
 * a layer can narrow what the others grant but never widen it. See doc/licensing.md. */
#ifndef LMRT_POLICY_POLICY_H
#define LMRT_POLICY_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"
#include "lmrt.h"
#include "policy/regions.h"

/* The modalities a policy speaks about (LMRT_MODALITY_TEXT | _IMAGE | _AUDIO). */
#define POLICY_MODALITIES (LMRT_MODALITY_TEXT | LMRT_MODALITY_IMAGE | LMRT_MODALITY_AUDIO)

/* Bytes of one withheld reason, NUL included (= lmrt_capabilities.withheld_reason). */
#define POLICY_REASON_MAX 256

/* The reason of the default policy's EU rule. */
#define POLICY_EU_MULTIMODAL_REASON "multimodal models are not licensed in the European Union"

/* One source of rules: the default policy, a model's metadata, or a deployer's text.
 * Immutable once built; safe to share between threads. */
typedef struct policy_layer policy_layer;

typedef struct policy_decision {
    uint32_t licensed;      /* the licensed subset of the modalities present */
    /* Why each present but withheld modality is withheld, "" otherwise; indexed by
     * slot (0 text, 1 image, 2 audio), e.g. "image withheld in DE: multimodal
     * models are not licensed in the European Union (default policy)". */
    char reason[LMRT_MODALITY_SLOTS][POLICY_REASON_MAX];
} policy_decision;

/* The built-in default layer (origin "default policy"): text everywhere; image
 * and audio denied in the EU. Static storage; policy_layer_free ignores it. */
const policy_layer *policy_default(void);

/* Decides what is licensed in `region` (NULL, unset or unassigned: fail closed,
 * i.e. only modalities that no rule restricts anywhere) for a model that has
 * `modalities_present`. The default layer always applies first; `layers` (n of
 * them, at most 7, NULL entries skipped) add to it: model policy, deployer policy.
 * A reason names the first rule that withholds the modality and its layer.
 * LMRT_E_INVALID_ARG for unknown modality bits or a NULL `out`/`layers` (n > 0). */
lmrt_status policy_decide(const policy_layer *const *layers, size_t n, const region_code *region,
                          uint32_t modalities_present, policy_decision *out);

/* policy_decide for one modality about to be used: LMRT_OK when licensed, else
 * LMRT_E_NOT_LICENSED with the reason as the error message. */
lmrt_status policy_require(const policy_layer *const *layers, size_t n, const region_code *region,
                           uint32_t modality);

/* Parses deployer policy text (doc/licensing.md), one rule per line:
 *     deny  <modality> <region|group>...  [# reason]
 *     allow <modality> <region|group>...  [# reason]
 * `origin` names the layer in reasons and messages ("deployer policy").
 * A syntax error, an unknown modality, or a token that is neither an assigned
 * code nor a group is LMRT_E_INVALID_ARG naming the line and the token.
 * Text without rules gives a layer with none. */
lmrt_status policy_parse_text(const char *text, const char *origin, policy_layer **out);

/* Builds the model's layer (origin "model policy") from the lmrt.policy.* keys:
 *     lmrt.policy.<modality>.deny    array of strings (codes or groups)
 *     lmrt.policy.<modality>.allow   array of strings; licensed only there
 *     lmrt.policy.<modality>.reason  string, used for both
 * LMRT_OK with *out = NULL when there are no such keys. A wrongly typed value,
 * an unknown region or group, or an unknown lmrt.policy.* key is LMRT_E_FORMAT
 * naming the key. */
lmrt_status policy_from_gguf(const gguf_file *f, policy_layer **out);

/* Frees a layer; NULL and policy_default() are fine. */
void policy_layer_free(policy_layer *layer);

/* The layer's origin ("deployer policy"), and how many rules it has. */
const char *policy_layer_origin(const policy_layer *layer);
size_t policy_layer_n_rules(const policy_layer *layer);

/* "text", "image", "audio" for one LMRT_MODALITY_* bit; NULL otherwise. */
const char *policy_modality_name(uint32_t modality);
/* The slot (0 text, 1 image, 2 audio) of one LMRT_MODALITY_* bit; -1 otherwise. */
int policy_modality_slot(uint32_t modality);

#endif
