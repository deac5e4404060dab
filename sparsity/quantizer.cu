// CUDA instantiations of the quantizers' device bodies (sparsity/code_kernels.hpp).
#include "runtime/launch.cuh"
#include "sparsity/code_kernels.hpp"

DSG_CUDA_KERNEL(dsg::CodeSumChunks)
DSG_CUDA_KERNEL(dsg::CodeSumReduce)
DSG_CUDA_KERNEL(dsg::KMeansGradTable)
DSG_CUDA_KERNEL(dsg::KMeansCentroids)
DSG_CUDA_KERNEL(dsg::TtqScaleStep)
DSG_CUDA_KERNEL(dsg::TtqTable)
