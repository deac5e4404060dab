// CUDA instantiations of InnerProduct's kernel bodies (layers/inner_product_kernels.hpp).
#include "layers/inner_product_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::WeightBlockGather)
DSG_CUDA_KERNEL(dsg::WeightBlockScatterAdd)
DSG_CUDA_KERNEL(dsg::ExpandColumns)
DSG_CUDA_KERNEL(dsg::KeptColumnSums)
