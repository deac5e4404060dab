// CUDA instantiations of the Pooling layer's kernel bodies (layers/pooling_kernels.hpp).
#include "runtime/launch.cuh"
#include "layers/pooling_kernels.hpp"

DSG_CUDA_KERNEL(dsg::pool_kernels::MaxForward)
DSG_CUDA_KERNEL(dsg::pool_kernels::AveForward)
DSG_CUDA_KERNEL(dsg::pool_kernels::Backward)
