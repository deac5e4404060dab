// CUDA instantiations of TTQ's device bodies (sparsity/ttq_kernels.hpp).
#include "runtime/launch.cuh"
#include "sparsity/ttq_kernels.hpp"

DSG_CUDA_KERNEL(dsg::TtqAbsMaxChunks)
DSG_CUDA_KERNEL(dsg::TtqMaxOfParts)
DSG_CUDA_KERNEL(dsg::TtqCodes)
