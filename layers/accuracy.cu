// CUDA instantiations of the Accuracy layer's kernels (layers/accuracy_kernels.hpp).
#include "layers/accuracy_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::AccuracyMark)
DSG_CUDA_KERNEL(dsg::AccuracyCount)
DSG_CUDA_KERNEL(dsg::AccuracyFinish)
