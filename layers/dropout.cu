// CUDA instantiations of the Dropout layer's kernels (layers/elementwise_kernels.hpp).
#include "layers/elementwise_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::DropoutForward)
DSG_CUDA_KERNEL(dsg::DropoutBackward)
