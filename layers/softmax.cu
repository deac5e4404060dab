// CUDA instantiation of the Softmax layer's backward kernel (layers/softmax_kernels.hpp).
#include "layers/softmax_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::SoftmaxBackward)
