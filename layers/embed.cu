// CUDA instantiations of the Embed layer's kernels (layers/embed_kernels.hpp).
#include "layers/embed_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::EmbedForward)
DSG_CUDA_KERNEL(dsg::EmbedWeightGrad)
