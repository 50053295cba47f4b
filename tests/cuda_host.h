// Compiles python_layers/loss/cuda/kernels.cu as host C++ (g++ -include cuda_host.h), so that
// the tests run the kernels on the CPU: each thread of a block is an OS thread (threadIdx is
// thread-local), __shared__ variables are shared by them, and __syncthreads() is a barrier.
// Blocks run one after another (tests/cuda_host.py launches them).
#include <barrier>
#include <cmath>
#include <cstddef>
#include <memory>

using std::isfinite;

struct Dim3 {
  unsigned x, y, z;
};
static thread_local Dim3 threadIdx = {0, 0, 0};
static Dim3 blockIdx = {0, 0, 0}, blockDim = {1, 1, 1};
static std::unique_ptr<std::barrier<>> host_barrier;

#define __global__
#define __device__
#define __shared__ static
static inline void __syncthreads() { host_barrier->arrive_and_wait(); }

extern "C" void host_begin_block(unsigned block, unsigned threads) {
  blockIdx.x = block;
  blockDim.x = threads;
  host_barrier = std::make_unique<std::barrier<>>(threads);
}
extern "C" void host_set_thread(unsigned thread) { threadIdx.x = thread; }
