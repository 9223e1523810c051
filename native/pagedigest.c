// Page digests (src/vault/_page-digests.ts) as a Node-API addon: the first 16 bytes of the SHA-256 of
// every 4 KiB page of a buffer, or of its HMAC-SHA-256 with a key, in one call per buffer. The
// JavaScript way makes one crypto call per page (256 per MiB), whose fixed cost is as large as the
// hashing itself; here the pages go straight to the SHA-256 of the OpenSSL inside the running Node
// (its symbols, resolved when the addon loads; SHA extensions where the CPU has them). The HMAC keeps
// the key's inner and outer states and copies them for each page (RFC 2104), as OpenSSL's does.
// Built by scripts/build-native.js; loaded by src/vault/_page-digests.ts, which hashes in JavaScript
// when this file was not built.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PAGE 4096
#define DIGEST 16
#define BLOCK 64

static int typed_bytes(napi_env env, napi_value v, uint8_t** data, size_t* length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  void* p = NULL;
  if (napi_get_typedarray_info(env, v, &type, length, &p, &ab, &offset) != napi_ok ||
      type != napi_uint8_array)
    return 0;
  *data = (uint8_t*)p;
  return 1;
}

// digests(data, key | null, out): writes the digest of page i of `data` at out[16 i]; the last page
// may be short. `out` holds at least 16 * ceil(data.length / 4096) bytes.
static napi_value Digests(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  uint8_t *data = NULL, *key = NULL, *out = NULL;
  size_t length = 0, key_length = 0, out_length = 0;
  napi_valuetype key_type = napi_null;
  if (argc == 3) napi_typeof(env, argv[1], &key_type);
  if (argc < 3 || !typed_bytes(env, argv[0], &data, &length) ||
      !(key_type == napi_null || typed_bytes(env, argv[1], &key, &key_length)) ||
      !typed_bytes(env, argv[2], &out, &out_length)) {
    napi_throw_type_error(env, NULL, "digests needs (Uint8Array, Uint8Array | null, Uint8Array)");
    return NULL;
  }
  size_t pages = (length + PAGE - 1) / PAGE;
  if (out_length < pages * DIGEST) {
    napi_throw_range_error(env, NULL, "digests: the output is too short");
    return NULL;
  }
  uint8_t md[SHA256_DIGEST_LENGTH];
  if (key_type == napi_null) {
    for (size_t i = 0; i < pages; i++) {
      size_t n = length - i * PAGE < PAGE ? length - i * PAGE : PAGE;
      SHA256(data + i * PAGE, n, md);
      memcpy(out + i * DIGEST, md, DIGEST);
    }
    return NULL;
  }
  uint8_t k[BLOCK] = {0};
  if (key_length > BLOCK)
    SHA256(key, key_length, k);
  else
    memcpy(k, key, key_length);
  uint8_t pad[BLOCK];
  SHA256_CTX inner, outer, ctx;
  for (int j = 0; j < BLOCK; j++) pad[j] = k[j] ^ 0x36;
  SHA256_Init(&inner);
  SHA256_Update(&inner, pad, BLOCK);
  for (int j = 0; j < BLOCK; j++) pad[j] = k[j] ^ 0x5c;
  SHA256_Init(&outer);
  SHA256_Update(&outer, pad, BLOCK);
  for (size_t i = 0; i < pages; i++) {
    size_t n = length - i * PAGE < PAGE ? length - i * PAGE : PAGE;
    ctx = inner;
    SHA256_Update(&ctx, data + i * PAGE, n);
    SHA256_Final(md, &ctx);
    ctx = outer;
    SHA256_Update(&ctx, md, SHA256_DIGEST_LENGTH);
    SHA256_Final(md, &ctx);
    memcpy(out + i * DIGEST, md, DIGEST);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "digests", NAPI_AUTO_LENGTH, Digests, NULL, &fn);
  napi_set_named_property(env, exports, "digests", fn);
  return exports;
}
