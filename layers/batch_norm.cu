// CUDA instantiations of the BatchNorm layer's kernel bodies (layers/batch_norm_kernels.hpp).
#include "runtime/launch.cuh"
#include "layers/batch_norm_kernels.hpp"

DSG_CUDA_KERNEL(dsg::bn_kernels::PartialSums)
DSG_CUDA_KERNEL(dsg::bn_kernels::ChannelMean)
DSG_CUDA_KERNEL(dsg::bn_kernels::BatchStats)
DSG_CUDA_KERNEL(dsg::bn_kernels::BatchFactor)
DSG_CUDA_KERNEL(dsg::bn_kernels::GlobalStats)
DSG_CUDA_KERNEL(dsg::bn_kernels::Normalize)
DSG_CUDA_KERNEL(dsg::bn_kernels::BackwardParts)
DSG_CUDA_KERNEL(dsg::bn_kernels::BackwardMeans)
DSG_CUDA_KERNEL(dsg::bn_kernels::BackwardDx)
