// CUDA instantiations of the Sigmoid layer's kernels (layers/elementwise_kernels.hpp).
#include "layers/elementwise_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::SigmoidForward)
DSG_CUDA_KERNEL(dsg::SigmoidBackward)
