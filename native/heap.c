// Keeps memory the process frees for its next allocations instead of giving it back to the system at
// once (glibc's mallopt M_TRIM_THRESHOLD and M_TOP_PAD), as a Node-API addon.
// Why: node:http copies every received body chunk (up to 64 KiB) into a fresh malloc'd buffer, freed
// only when the garbage collector runs, tens of MiB later. With glibc's defaults the freed top of the
// heap is handed back at once, so the next chunks fault every page in again: on this VM a third of
// the blob API's upload CPU went to those page faults (BENCHMARKS.md, "Blob API", "Page faults").
// It also asks for transparent huge pages for long-lived I/O buffers (hugePages below): a 4 MiB page
// buffer of the blob API then costs two page faults when first touched instead of 1,024; and for the
// next part of a thread's heap (hugeHeap below), from which a backup's buffers come. And it tells V8
// of memory its owner frees itself (adjustExternalMemory below), which V8 need not collect.
// Built by scripts/build-native.js; loaded by src/util/retain-freed-heap.ts, which does nothing when
// this file was not built or the C library is not glibc.
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* retainFreedHeap(trimBytes: number, topPadBytes: number): boolean (false: not glibc, nothing set). */
static napi_value RetainFreedHeap(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t trim = 0, pad = 0;
  if (argc < 2 || napi_get_value_int64(env, argv[0], &trim) != napi_ok ||
      napi_get_value_int64(env, argv[1], &pad) != napi_ok || trim < 0 || pad < 0 || trim > INT32_MAX ||
      pad > INT32_MAX) {
    napi_throw_type_error(env, NULL, "retainFreedHeap needs two byte counts up to 2 GiB");
    return NULL;
  }
  int ok = 0;
#if defined(__GLIBC__)
  // Setting M_TRIM_THRESHOLD turns off glibc's sliding mmap threshold, which would leave it at 128
  // KiB: every larger buffer (the 1-4 MiB ones of reads, restores and archives) would then be mapped
  // and unmapped, faulting its pages in each time. Set it as far as that sliding threshold goes.
  ok = mallopt(M_TRIM_THRESHOLD, (int)trim) == 1 && mallopt(M_TOP_PAD, (int)pad) == 1 &&
       mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
#endif
  napi_get_boolean(env, ok, &result);
  return result;
}

#define HUGE_PAGE ((uintptr_t)2 * 1024 * 1024)

/*
 * hugePages(buffer: Uint8Array): number — asks the kernel for transparent huge pages (madvise
 * MADV_HUGEPAGE) for the whole 2 MiB pages inside `buffer`, and answers the offset in `buffer` of the
 * first 2 MiB boundary (-1: nothing advised, as on a system without the call or a buffer holding no
 * whole huge page). The advice only changes how the memory is backed, never its contents.
 */
static napi_value HugePages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = NULL;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "hugePages needs a Uint8Array");
    return NULL;
  }
  double offset = -1;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  uintptr_t start = (uintptr_t)data;
  uintptr_t first = (start + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t last = (start + length) & ~(HUGE_PAGE - 1);
  if (data != NULL && last > first && madvise((void*)first, last - first, MADV_HUGEPAGE) == 0)
    offset = (double)(first - start);
#endif
  napi_create_double(env, offset, &result);
  return result;
}

/* The first argument of a call as an int64; 0 where there is none or it is not a number. */
static int Int64Arg(napi_env env, napi_callback_info info, int64_t* out) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return 0;
  return napi_get_value_int64(env, argv[0], out) == napi_ok;
}

/*
 * hugeHeap(bytes: number): number — asks for transparent huge pages for the next `bytes` of the calling
 * thread's malloc arena: that much is taken from the arena in 16 MiB blocks, the whole 2 MiB pages of
 * their span advised (madvise MADV_HUGEPAGE) and the blocks freed again (retainFreedHeap keeps them in
 * the arena). Buffers later made there are then backed by 2 MiB pages: one page fault per 2 MiB first
 * touched instead of 512. Answers the bytes advised (0: nothing, as where the C library is not glibc).
 */
#define HEAP_BLOCK ((size_t)16 * 1024 * 1024)
#define HEAP_BLOCKS 32
static napi_value HugeHeap(napi_env env, napi_callback_info info) {
  napi_value result;
  int64_t bytes = 0;
  if (!Int64Arg(env, info, &bytes) || bytes < 0 ||
      bytes > (int64_t)(HEAP_BLOCK * HEAP_BLOCKS)) {
    napi_throw_type_error(env, NULL, "hugeHeap needs a byte count up to 512 MiB");
    return NULL;
  }
  double advised = 0;
#if defined(__GLIBC__) && defined(__linux__) && defined(MADV_HUGEPAGE)
  char* blocks[HEAP_BLOCKS];
  int n = 0;
  for (size_t total = 0; total < (size_t)bytes && n < HEAP_BLOCKS; total += HEAP_BLOCK) {
    char* p = malloc(HEAP_BLOCK);
    if (p == NULL) break;
    blocks[n++] = p;
  }
  // In address order; blocks side by side (only malloc's header between them) advised as one span.
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && blocks[j - 1] > blocks[j]; j--) {
      char* t = blocks[j];
      blocks[j] = blocks[j - 1];
      blocks[j - 1] = t;
    }
  for (int i = 0; i < n;) {
    int j = i;
    while (j + 1 < n && blocks[j + 1] - (blocks[j] + HEAP_BLOCK) <= 64) j++;
    uintptr_t first = ((uintptr_t)blocks[i] + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t last = ((uintptr_t)blocks[j] + HEAP_BLOCK) & ~(HUGE_PAGE - 1);
    if (last > first && madvise((void*)first, last - first, MADV_HUGEPAGE) == 0) advised += (double)(last - first);
    i = j + 1;
  }
  for (int i = n - 1; i >= 0; i--) free(blocks[i]);
#endif
  napi_create_double(env, advised, &result);
  return result;
}

/*
 * adjustExternalMemory(delta: number): number — adds `delta` (may be negative) to V8's count of the
 * calling thread's memory outside its heap (napi_adjust_external_memory) and answers the count. V8
 * starts a full collection each time that count grows 64 MiB past its value at the last one; memory
 * whose owner frees it explicitly (src/vault/_memory.ts, `disown`) is taken out of the count while
 * held, so that holding it does not set collections off that cannot free it.
 */
static napi_value AdjustExternalMemory(napi_env env, napi_callback_info info) {
  napi_value result;
  int64_t delta = 0;
  if (!Int64Arg(env, info, &delta) || delta > ((int64_t)1 << 40) || delta < -((int64_t)1 << 40)) {
    napi_throw_type_error(env, NULL, "adjustExternalMemory needs a byte count within 1 TiB");
    return NULL;
  }
  int64_t now = 0;
  if (napi_adjust_external_memory(env, delta, &now) != napi_ok) return NULL;
  napi_create_double(env, (double)now, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "adjustExternalMemory", NAPI_AUTO_LENGTH, AdjustExternalMemory, NULL, &fn);
  napi_set_named_property(env, exports, "adjustExternalMemory", fn);
  napi_create_function(env, "retainFreedHeap", NAPI_AUTO_LENGTH, RetainFreedHeap, NULL, &fn);
  napi_set_named_property(env, exports, "retainFreedHeap", fn);
  napi_create_function(env, "hugePages", NAPI_AUTO_LENGTH, HugePages, NULL, &fn);
  napi_set_named_property(env, exports, "hugePages", fn);
  napi_create_function(env, "hugeHeap", NAPI_AUTO_LENGTH, HugeHeap, NULL, &fn);
  napi_set_named_property(env, exports, "hugeHeap", fn);
  return exports;
}
