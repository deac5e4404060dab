// CUDA instantiations of the TanH layer's kernels (layers/elementwise_kernels.hpp).
#include "layers/elementwise_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::TanHForward)
DSG_CUDA_KERNEL(dsg::TanHBackward)
