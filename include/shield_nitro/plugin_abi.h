/* The C ABI of a shield-nitro code plugin (docs/plugin-abi.md).
 *
 * A code artifact is a shared object, sealed with Shield and opened only inside the enclave,
 * where it is loaded from memory (memfd_create + dlopen; the plaintext never touches a
 * filesystem). It exports the five functions below with C linkage. The enclave calls
 * init once with the model artifacts the caller named, then invoke for each request.
 *
 * Rules for plugin authors:
 *  - Return 0 on success; non-zero on failure, with a one-line reason in err (NUL-terminated,
 *    at most err_len bytes including the NUL).
 *  - Artifact and input memory belong to the enclave and stay valid only during the call
 *    (artifacts: until fini). Copy what you keep.
 *  - Outputs are allocated by the plugin and released by sn_plugin_free_output.
 *  - invoke may be called from several threads at once for one state: make it thread-safe
 *    (read-only model state is the usual way).
 */
#ifndef SHIELD_NITRO_PLUGIN_ABI_H_
#define SHIELD_NITRO_PLUGIN_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SN_PLUGIN_ABI_VERSION 1

/* A decrypted model artifact handed to init: its name (as loaded) and its bytes. */
typedef struct sn_artifact {
  const char* name;
  const uint8_t* data;
  size_t len;
} sn_artifact;

/* Returns SN_PLUGIN_ABI_VERSION; the enclave refuses plugins built for another version. */
int sn_plugin_abi_version(void);

/* Builds the plugin's state from its artifacts (e.g. parses model weights). */
int sn_plugin_init(const sn_artifact* artifacts, size_t n_artifacts, void** state, char* err, size_t err_len);

/* One request: input bytes in, output bytes out (allocated by the plugin). */
int sn_plugin_invoke(void* state, const uint8_t* input, size_t input_len, uint8_t** output, size_t* output_len,
                     char* err, size_t err_len);

/* Releases an output buffer returned by sn_plugin_invoke. */
void sn_plugin_free_output(void* state, uint8_t* output, size_t output_len);

/* Releases the state; the plugin should wipe secrets it derived from its artifacts. */
void sn_plugin_fini(void* state);

#ifdef __cplusplus
}
#endif

#endif /* SHIELD_NITRO_PLUGIN_ABI_H_ */
