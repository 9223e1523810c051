// Azure Storage's CRC-64 (CRC-64/NVME: reflected, polynomial 0x9A6C9329AC4BC9B5, initial value and final
// xor all ones) as a Node-API addon. On x86-64 CPUs with PCLMULQDQ the bytes are folded 128 at a time
// with carry-less multiplication (Intel, "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ
// Instruction", 2009); elsewhere, and for short inputs and tails, a slicing-by-8 table loop does it.
// The folding constants x^n mod P are computed at load from the polynomial, not copied from a table.
// Built by scripts/build-native.js; loaded by src/blobapi/_crc64.ts, which falls back to WebAssembly
// when this file was not built.
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define POLY_REFLECTED 0x9A6C9329AC4BC9B5ULL

static uint64_t table[8][256];

static void init_tables(void) {
  for (int n = 0; n < 256; n++) {
    uint64_t crc = (uint64_t)n;
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ POLY_REFLECTED : crc >> 1;
    table[0][n] = crc;
  }
  for (int n = 0; n < 256; n++) {
    uint64_t crc = table[0][n];
    for (int k = 1; k < 8; k++) {
      crc = table[0][crc & 0xff] ^ (crc >> 8);
      table[k][n] = crc;
    }
  }
}

/* The table loop: `crc` is the register (not inverted). */
static uint64_t crc64_table(uint64_t crc, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= crc;
    crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
          table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
          table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

/* x^n mod P in the reflected form: bit 63-i holds the coefficient of x^i. */
static uint64_t xpow_mod_reflected(unsigned n) {
  uint64_t normal = 0, poly = 0, v = 1;
  for (int i = 0; i < 64; i++)
    if (POLY_REFLECTED & (1ULL << i)) poly |= 1ULL << (63 - i);
  for (unsigned i = 0; i < n; i++) v = (v & (1ULL << 63)) ? (v << 1) ^ poly : v << 1;
  normal = v;
  uint64_t reflected = 0;
  for (int i = 0; i < 64; i++)
    if (normal & (1ULL << i)) reflected |= 1ULL << (63 - i);
  return reflected;
}

/*
 * A 16-byte lane loaded little-endian holds H (its first 8 bytes, the higher-degree half) in the low
 * quadword and L in the high one; moved forward by D bits it is H*x^(64+D) + L*x^D. A carry-less product
 * of reflected operands comes out multiplied by x, hence the constants x^(64+D-1) and x^(D-1) mod P.
 */
static __m128i fold_keys[9]; /* fold_keys[i]: for a distance of 128*i bits (i >= 1) */
static int have_clmul = 0;

static void init_clmul(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  if (!(c & bit_PCLMUL) || !(c & bit_SSE4_1)) return;
  for (int i = 1; i <= 8; i++) {
    unsigned dist = 128u * (unsigned)i;
    fold_keys[i] = _mm_set_epi64x((long long)xpow_mod_reflected(dist - 1),
                                  (long long)xpow_mod_reflected(64 + dist - 1));
  }
  have_clmul = 1;
}

__attribute__((target("pclmul,sse4.1"))) static inline __m128i fold(__m128i x, __m128i keys, __m128i next) {
  __m128i h = _mm_clmulepi64_si128(x, keys, 0x00);
  __m128i l = _mm_clmulepi64_si128(x, keys, 0x11);
  return _mm_xor_si128(_mm_xor_si128(h, l), next);
}

#define LOAD(p) _mm_loadu_si128((const __m128i*)(p))

/* Needs n >= 128. */
__attribute__((target("pclmul,sse4.1"))) static uint64_t crc64_clmul(uint64_t crc, const uint8_t* p, size_t n) {
  __m128i x[8];
  for (int i = 0; i < 8; i++) x[i] = LOAD(p + 16 * i);
  x[0] = _mm_xor_si128(x[0], _mm_set_epi64x(0, (long long)crc));
  p += 128;
  n -= 128;
  /* Eight lanes move forward by 1024 bits each round. */
  while (n >= 128) {
    for (int i = 0; i < 8; i++) x[i] = fold(x[i], fold_keys[8], LOAD(p + 16 * i));
    p += 128;
    n -= 128;
  }
  /* Lane i is 7-i lanes before the last one. */
  __m128i acc = x[7];
  for (int i = 0; i < 7; i++) acc = fold(x[i], fold_keys[7 - i], acc);
  while (n >= 16) {
    acc = fold(acc, fold_keys[1], LOAD(p));
    p += 16;
    n -= 16;
  }
  /* What is left is the CRC of acc's 16 bytes from a zero register, then of the tail. */
  uint8_t last[16];
  _mm_storeu_si128((__m128i*)last, acc);
  crc = crc64_table(0, last, 16);
  return crc64_table(crc, p, n);
}
#endif

static uint64_t crc64_update(uint64_t crc, const uint8_t* p, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (have_clmul && n >= 256) return crc64_clmul(crc, p, n);
#endif
  return crc64_table(crc, p, n);
}

/* crc64(data: ArrayBufferView, initial?: bigint): bigint. `initial` and the answer are finished CRCs. */
static napi_value Crc64(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "crc64 needs a Uint8Array");
    return NULL;
  }
  void* data = NULL;
  size_t length = 0;
  bool is_typed = false;
  napi_is_typedarray(env, argv[0], &is_typed);
  if (is_typed) {
    napi_typedarray_type type;
    napi_value ab;
    size_t offset;
    if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &offset) != napi_ok ||
        type != napi_uint8_array) {
      napi_throw_type_error(env, NULL, "crc64 needs a Uint8Array");
      return NULL;
    }
  } else {
    napi_throw_type_error(env, NULL, "crc64 needs a Uint8Array");
    return NULL;
  }
  uint64_t initial = 0;
  if (argc >= 2) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t == napi_bigint) {
      bool lossless;
      napi_get_value_bigint_uint64(env, argv[1], &initial, &lossless);
    }
  }
  uint64_t crc = ~crc64_update(~initial, (const uint8_t*)data, length);
  napi_value result;
  napi_create_bigint_uint64(env, crc, &result);
  return result;
}

/* Which path long inputs take: "pclmulqdq" or "table". */
static napi_value Implementation(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  const char* name = have_clmul ? "pclmulqdq" : "table";
#else
  const char* name = "table";
#endif
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result);
  return result;
}

NAPI_MODULE_INIT() {
  init_tables();
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  init_clmul();
#endif
  napi_value fn;
  napi_create_function(env, "crc64", NAPI_AUTO_LENGTH, Crc64, NULL, &fn);
  napi_set_named_property(env, exports, "crc64", fn);
  napi_create_function(env, "implementation", NAPI_AUTO_LENGTH, Implementation, NULL, &fn);
  napi_set_named_property(env, exports, "implementation", fn);
  return exports;
}
