// CUDA instantiations of the LSTM's kernel bodies (layers/lstm_kernels.hpp).
#include "layers/lstm_kernels.hpp"
#include "runtime/launch.cuh"

DSG_CUDA_KERNEL(dsg::LstmCellForward)
DSG_CUDA_KERNEL(dsg::LstmGateGradients)
