// CUDA instantiations of the Eltwise layer's kernels (layers/elementwise_kernels.hpp).
#include "layers/elementwise_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::EltwiseForward)
DSG_CUDA_KERNEL(dsg::EltwiseProdBackward)
DSG_CUDA_KERNEL(dsg::EltwiseSumMaxBackward)
