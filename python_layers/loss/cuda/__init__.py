"""The loss on GPU memory (CUDA kernels; CuPy launches them in GPU nets)."""
