// LD_PRELOAD shim: counts the cudaMemcpy calls that copy device memory to the host, so that
// scripts/gpu/copies.py can show how many bytes a training iteration brings back from the GPU.
// Caffe moves blobs between host and device with cudaMemcpy(..., cudaMemcpyDefault).
// Built by scripts/gpu/pack.sh: gcc -shared -fPIC -I<cuda>/include count_copies.c -ldl
#define _GNU_SOURCE
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <stddef.h>

typedef cudaError_t (*memcpy_fn)(void*, const void*, size_t, enum cudaMemcpyKind);
typedef cudaError_t (*attributes_fn)(struct cudaPointerAttributes*, const void*);

static unsigned long long copies_to_host = 0, bytes_to_host = 0, largest_to_host = 0;

static int on_host(const void* pointer) {
  static attributes_fn attributes = NULL;
  struct cudaPointerAttributes a;
  if (!attributes) attributes = (attributes_fn)dlsym(RTLD_NEXT, "cudaPointerGetAttributes");
  if (!attributes || attributes(&a, pointer) != cudaSuccess) return 1;
  return a.type == cudaMemoryTypeHost || a.type == cudaMemoryTypeUnregistered;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
  static memcpy_fn real = NULL;
  if (!real) real = (memcpy_fn)dlsym(RTLD_NEXT, "cudaMemcpy");
  const int to_host = kind == cudaMemcpyDeviceToHost ||
                      (kind == cudaMemcpyDefault && on_host(dst) && !on_host(src));
  if (to_host) {
    copies_to_host += 1;
    bytes_to_host += count;
    if (count > largest_to_host) largest_to_host = count;
  }
  return real(dst, src, count, kind);
}

// Read (and reset) the counters: copies, bytes, largest single copy.
void count_copies_take(unsigned long long out[3]) {
  out[0] = copies_to_host;
  out[1] = bytes_to_host;
  out[2] = largest_to_host;
  copies_to_host = bytes_to_host = largest_to_host = 0;
}
