// CUDA instantiations of the copy kernels of Concat, Slice and ImageToSequence
// (layers/copy_kernels.hpp).
#include "layers/copy_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::StridedCopy)
DSG_CUDA_KERNEL(dsg::ImageSequenceCopy)
