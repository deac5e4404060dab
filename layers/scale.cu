// CUDA instantiations of the Scale layer's kernels (layers/elementwise_kernels.hpp).
#include "layers/elementwise_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::ScaleForward)
DSG_CUDA_KERNEL(dsg::ScaleBackward)
DSG_CUDA_KERNEL(dsg::ScaleParamGrad)
