// Policy "ese": load-balance-aware pruning (see ese.hpp). Configuration: FINE granularity only,
// num_partitions N >= 1 dividing the number of rows M. Each partition keeps
// round((1 - s) * (M / N) * K') weights of largest |w| (at least one), so all partitions hold
// exactly the same number of non-zeros. Under GLOBAL scope the layer's share of the global budget
// is computed by the controller and then balanced over the partitions in the same way.
#include "sparsity/ese.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "sparsity/policy.hpp"

namespace dsg {

std::vector<int64_t> nonzeros_per_partition(const Tensor& weights, int partitions) {
  if (partitions < 1) throw Error(strfmt("nonzeros_per_partition: partitions must be >= 1, got %d", partitions));
  if (weights.num_axes() < 1) throw Error("nonzeros_per_partition: the weight tensor has no axes");
  const int64_t rows = weights.shape(0);
  const int64_t cols = rows > 0 ? weights.count() / rows : 0;
  std::vector<int64_t> nnz(size_t(partitions), 0);
  const float* d = weights.data();
  for (int64_t r = 0; r < rows; ++r) {
    int64_t count = 0;
    for (int64_t c = 0; c < cols; ++c) count += d[r * cols + c] != 0.0f;
    nnz[size_t(r % partitions)] += count;
  }
  return nnz;
}

namespace {

class EsePolicy : public SparsityPolicy {
 public:
  using SparsityPolicy::SparsityPolicy;
  const char* type() const override { return "ese"; }

  // "non-zeros per partition max/mean 1.000 over N partitions" (1.0 = perfectly balanced).
  std::string detail() const override {
    auto nnz = nonzeros_per_partition(*layer_.blobs()[0], param_.num_partitions());
    int64_t max = 0, sum = 0;
    for (int64_t v : nnz) max = std::max(max, v), sum += v;
    double mean = double(sum) / double(nnz.size());
    return strfmt("non-zeros per partition max/mean %.3f over %zu partitions", mean > 0 ? max / mean : 1.0, nnz.size());
  }

  // Base checks, then num_partitions >= 1, rows % num_partitions == 0 and FINE granularity.
  void validate() const override {
    SparsityPolicy::validate();
    const std::string where = "layer '" + layer_.name() + "' sparsity_param (policy ese): ";
    const Tensor& w = *layer_.blobs()[0];
    const int n = param_.num_partitions();
    if (n < 1) throw Error(where + strfmt("num_partitions must be >= 1, got %d", n));
    if (param_.granularity() != SparsityParameter::FINE)
      throw Error(where + "granularity must be FINE (load balancing counts single weights), got " +
                  SparsityParameter::Granularity_Name(param_.granularity()));
    const int64_t m = w.shape(0);
    if (m % n != 0)
      throw Error(where + strfmt("weights %s have M = %lld rows, which num_partitions N = %d does not divide "
                                 "(M %% N = %lld); every partition must get the same number of rows",
                                 w.shape_string().c_str(), static_cast<long long>(m), n,
                                 static_cast<long long>(m % n)));
  }

 protected:
  void compute_mask(float sparsity, std::vector<uint8_t>& mask) const override {
    const Tensor& w = *layer_.blobs()[0];
    const float* d = w.data();
    const int n = param_.num_partitions();
    const int64_t rows = w.shape(0);
    const int64_t cols = rows > 0 ? w.count() / rows : 0;
    const int64_t per_partition = (rows / n) * cols;
    double k = std::round((1.0 - double(sparsity)) * double(per_partition));
    const size_t keep = size_t(std::clamp(k, 1.0, double(std::max<int64_t>(per_partition, 1))));
    mask.assign(size_t(w.count()), 0);
    std::vector<float> score;
    std::vector<int64_t> index;
    for (int p = 0; p < n; ++p) {
      score.clear();
      index.clear();
      for (int64_t r = p; r < rows; r += n)
        for (int64_t c = 0; c < cols; ++c) {
          score.push_back(std::fabs(d[r * cols + c]));
          index.push_back(r * cols + c);
        }
      std::vector<uint8_t> kept = keep_top(score, keep);
      for (size_t j = 0; j < kept.size(); ++j) mask[size_t(index[j])] = kept[j];
    }
  }
};

}  // namespace

DSG_REGISTER_POLICY("ese", EsePolicy);

}  // namespace dsg
