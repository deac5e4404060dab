// CUDA instantiations of the Convolution layer's kernel bodies (layers/conv_kernels.hpp).
#include "runtime/launch.cuh"
#include "layers/conv_kernels.hpp"

DSG_CUDA_KERNEL(dsg::conv_kernels::Im2col)
DSG_CUDA_KERNEL(dsg::conv_kernels::Col2im)
DSG_CUDA_KERNEL(dsg::conv_kernels::ScatterOutput)
DSG_CUDA_KERNEL(dsg::conv_kernels::GatherDiff)
DSG_CUDA_KERNEL(dsg::conv_kernels::AddBiasDiff)
DSG_CUDA_KERNEL(dsg::conv_kernels::GatherWeights)
DSG_CUDA_KERNEL(dsg::conv_kernels::ScatterAddWeights)
