// Page digests (src/vault/_page-digests.ts) as a Node-API addon: the AES-CMAC (RFC 4493, AES-128) of
// every 4 KiB page of a buffer under a 16-byte key, in one call per buffer. CMAC is a pseudorandom
// function of the page under a secret key: equal pages give equal digests, and without the key nobody
// can find two pages with one digest or learn anything of a page from its digest. A page is a CBC chain
// of 256 AES blocks; eight pages are hashed side by side so that their AES rounds interleave
// (AES-NI, ~7.5 GB/s on one core here against 1.5 GB/s for a SHA-256 of each page). Without AES-NI
// (or on another architecture) each block goes through the AES of the OpenSSL inside the running Node
// (its symbols, resolved when the addon loads). Built by scripts/build-native.js; loaded by
// src/vault/_page-digests.ts, which computes the same digests with node:crypto when this file was not
// built.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <node_api.h>
#include <openssl/aes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_AESNI 1
#define AESNI __attribute__((target("aes,sse4.1")))
#endif

#define PAGE 4096
#define BLOCK 16
#define LANES 8

typedef struct {
  AES_KEY soft;
  bool hw;
  uint8_t k1[BLOCK], k2[BLOCK];
#ifdef HAVE_AESNI
  __m128i rk[11];
#endif
} Key;

#ifdef HAVE_AESNI
AESNI static __m128i expand_step(__m128i k, __m128i assist) {
  assist = _mm_shuffle_epi32(assist, 0xff);
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
  return _mm_xor_si128(k, assist);
}

#define EXPAND(i, rcon) rk[i] = expand_step(rk[i - 1], _mm_aeskeygenassist_si128(rk[i - 1], rcon))

// The AES-128 key schedule (FIPS 197), round keys as AES-NI takes them.
AESNI static void expand(const uint8_t* key, __m128i* rk) {
  rk[0] = _mm_loadu_si128((const __m128i*)key);
  EXPAND(1, 0x01);
  EXPAND(2, 0x02);
  EXPAND(3, 0x04);
  EXPAND(4, 0x08);
  EXPAND(5, 0x10);
  EXPAND(6, 0x20);
  EXPAND(7, 0x40);
  EXPAND(8, 0x80);
  EXPAND(9, 0x1b);
  EXPAND(10, 0x36);
}

AESNI static void encrypt_hw(const Key* k, const uint8_t in[BLOCK], uint8_t out[BLOCK]) {
  __m128i x = _mm_xor_si128(_mm_loadu_si128((const __m128i*)in), k->rk[0]);
  for (int r = 1; r < 10; r++) x = _mm_aesenc_si128(x, k->rk[r]);
  _mm_storeu_si128((__m128i*)out, _mm_aesenclast_si128(x, k->rk[10]));
}

// The CMACs of LANES whole pages side by side (their chains are independent); the last block of each
// is whole, so it takes K1.
AESNI static void cmac_pages(const Key* k, const uint8_t* m, uint8_t* out) {
  const __m128i k1 = _mm_loadu_si128((const __m128i*)k->k1);
  __m128i x[LANES];
  for (int l = 0; l < LANES; l++) x[l] = _mm_setzero_si128();
  for (int b = 0; b < PAGE / BLOCK; b++) {
    for (int l = 0; l < LANES; l++) {
      __m128i v = _mm_loadu_si128((const __m128i*)(m + (size_t)l * PAGE + (size_t)b * BLOCK));
      if (b == PAGE / BLOCK - 1) v = _mm_xor_si128(v, k1);
      x[l] = _mm_xor_si128(_mm_xor_si128(x[l], v), k->rk[0]);
    }
    for (int r = 1; r < 10; r++)
      for (int l = 0; l < LANES; l++) x[l] = _mm_aesenc_si128(x[l], k->rk[r]);
    for (int l = 0; l < LANES; l++) x[l] = _mm_aesenclast_si128(x[l], k->rk[10]);
  }
  for (int l = 0; l < LANES; l++) _mm_storeu_si128((__m128i*)(out + (size_t)l * BLOCK), x[l]);
}
#endif

static void encrypt(const Key* k, const uint8_t in[BLOCK], uint8_t out[BLOCK]) {
#ifdef HAVE_AESNI
  if (k->hw) {
    encrypt_hw(k, in, out);
    return;
  }
#endif
  AES_encrypt(in, out, &k->soft);
}

// Doubling in GF(2^128) as RFC 4493 derives its subkeys: a left shift, 0x87 folded in on a carry.
static void dbl(const uint8_t in[BLOCK], uint8_t out[BLOCK]) {
  uint8_t carry = in[0] >> 7;
  for (int i = 0; i < BLOCK - 1; i++) out[i] = (uint8_t)((in[i] << 1) | (in[i + 1] >> 7));
  out[BLOCK - 1] = (uint8_t)((in[BLOCK - 1] << 1) ^ (carry ? 0x87 : 0));
}

static void setup(Key* k, const uint8_t key[BLOCK], bool allow_hw) {
  k->hw = false;
#ifdef HAVE_AESNI
  k->hw = allow_hw && __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse4.1");
  if (k->hw) expand(key, k->rk);
#endif
  if (!k->hw) AES_set_encrypt_key(key, 128, &k->soft);
  uint8_t zero[BLOCK] = {0}, l[BLOCK];
  encrypt(k, zero, l);
  dbl(l, k->k1);
  dbl(k->k1, k->k2);
}

// The CMAC of one message of n > 0 bytes (a short last page, or any page without AES-NI).
static void cmac_one(const Key* k, const uint8_t* m, size_t n, uint8_t out[BLOCK]) {
  uint8_t x[BLOCK] = {0}, last[BLOCK] = {0};
  size_t blocks = (n + BLOCK - 1) / BLOCK;
  for (size_t b = 0; b + 1 < blocks; b++) {
    for (int i = 0; i < BLOCK; i++) x[i] ^= m[b * BLOCK + i];
    encrypt(k, x, x);
  }
  size_t r = n - (blocks - 1) * BLOCK;
  memcpy(last, m + (blocks - 1) * BLOCK, r);
  if (r < BLOCK) last[r] = 0x80;
  const uint8_t* sub = r == BLOCK ? k->k1 : k->k2;
  for (int i = 0; i < BLOCK; i++) x[i] ^= last[i] ^ sub[i];
  encrypt(k, x, out);
}

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

// digests(data, key, out[, portable]): writes the digest of page i of `data` at out[16 i]; the last page
// may be short. `key` is 16 bytes; `out` holds at least 16 * ceil(data.length / 4096) bytes. `portable`
// (tests) takes OpenSSL's AES even where AES-NI is there.
static napi_value Digests(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  uint8_t *data = NULL, *key = NULL, *out = NULL;
  size_t length = 0, key_length = 0, out_length = 0;
  if (argc < 3 || !typed_bytes(env, argv[0], &data, &length) ||
      !typed_bytes(env, argv[1], &key, &key_length) || key_length != BLOCK ||
      !typed_bytes(env, argv[2], &out, &out_length)) {
    napi_throw_type_error(env, NULL, "digests needs (Uint8Array, a 16-byte Uint8Array key, Uint8Array)");
    return NULL;
  }
  bool portable = false;
  if (argc > 3) napi_get_value_bool(env, argv[3], &portable);
  size_t pages = (length + PAGE - 1) / PAGE;
  if (out_length < pages * BLOCK) {
    napi_throw_range_error(env, NULL, "digests: the output is too short");
    return NULL;
  }
  Key k;
  setup(&k, key, !portable);
  size_t i = 0;
#ifdef HAVE_AESNI
  if (k.hw)
    for (size_t whole = length / PAGE; i + LANES <= whole; i += LANES)
      cmac_pages(&k, data + i * PAGE, out + i * BLOCK);
#endif
  for (; i < pages; i++) {
    size_t n = length - i * PAGE < PAGE ? length - i * PAGE : PAGE;
    cmac_one(&k, data + i * PAGE, n, out + i * BLOCK);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "digests", NAPI_AUTO_LENGTH, Digests, NULL, &fn);
  napi_set_named_property(env, exports, "digests", fn);
  return exports;
}
