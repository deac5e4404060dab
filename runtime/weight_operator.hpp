// WeightOperator: an alternative implementation of "the layer's weight matrix times a matrix",
// installed on an InnerProduct or Convolution layer for inference (dsgeval runs a .dsgz file's
// EIE-style compressed form through it, without materialising the dense weights). The layer keeps
// its bias, im2col and layout handling and calls multiply() where it would call its weight GEMM.
#pragma once
#include <cstdint>
#include <string>

namespace dsg {

class WeightOperator {
 public:
  virtual ~WeightOperator() = default;
  // The weight matrix's shape: rows = outputs (filters / neurons), cols = inputs (C*kh*kw or K).
  virtual int64_t rows() const = 0;
  virtual int64_t cols() const = 0;
  // C[rows x p] = W[rows x cols] * B[cols x p], all row-major; C is overwritten.
  virtual void multiply(const float* b, int64_t p, float* c) const = 0;
  // A short name for reports ("eie-codebook").
  virtual std::string name() const = 0;
};

}  // namespace dsg
