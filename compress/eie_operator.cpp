#include "compress/eie_operator.hpp"

#include <algorithm>

#include "runtime/error.hpp"

namespace dsg::compress {
namespace {

class CompressedOperator : public WeightOperator {
 public:
  explicit CompressedOperator(const CompressedBlob& blob) : blob_(blob) {
    if (blob.kind == BlobKind::RAW) throw Error("blob '" + blob.layer + "' is stored raw; it has no compressed kernel");
    if (blob.shape.size() < 2 || blob.shape[0] <= 0)
      throw Error("blob '" + blob.layer + "' is not a weight matrix");
    rows_ = blob.shape[0];
    cols_ = blob.count() / rows_;
  }
  int64_t rows() const override { return rows_; }
  int64_t cols() const override { return cols_; }
  std::string name() const override { return std::string("eie-") + blob_kind_name(blob_.kind); }

  void multiply(const float* b, int64_t p, float* c) const override {
    std::fill(c, c + rows_ * p, 0.0f);
    // Input rows (activations) that are zero for every column of B are skipped.
    std::vector<uint8_t> live(size_t(cols_), 0);
    for (int64_t k = 0; k < cols_; ++k) {
      const float* row = b + k * p;
      for (int64_t t = 0; t < p && !live[size_t(k)]; ++t) live[size_t(k)] = row[t] != 0.0f;
    }
    auto accumulate = [&](int64_t element, float w) {
      const int64_t r = element / cols_, k = element % cols_;
      if (!live[size_t(k)]) return;
      float* out = c + r * p;
      const float* in = b + k * p;
      for (int64_t t = 0; t < p; ++t) out[t] += w * in[t];
    };
    const auto& s = blob_.codebook;
    if (blob_.kind == BlobKind::TERNARY) {
      for (int64_t e = 0; e < rows_ * cols_; ++e)
        if (uint32_t code = blob_.codes[size_t(e)]) accumulate(e, s[code]);
      return;
    }
    const bool codebook = blob_.kind == BlobKind::CODEBOOK;
    for_each_stored(blob_, [&](int64_t element, size_t k) {
      const float w = codebook ? s[blob_.codes[k]] : blob_.values[k];
      if (w != 0.0f) accumulate(element, w);
    });
  }

 private:
  CompressedBlob blob_;  // a copy: the operator may outlive the model it came from
  int64_t rows_ = 0, cols_ = 0;
};

}  // namespace

std::shared_ptr<const WeightOperator> make_compressed_operator(const CompressedBlob& blob) {
  return std::make_shared<CompressedOperator>(blob);
}

}  // namespace dsg::compress
