// Policy "ese": load-balance-aware pruning (see ese.hpp). Configuration: FINE granularity only,
// num_partitions N >= 1 dividing the rows of each gate block (M, or H for the LSTM). Each
// (gate block, partition) pair keeps round((1 - s) * rows_per_partition * K') weights of largest
// |w| (at least one), so all partitions hold exactly the same number of non-zeros in every gate.
// Under GLOBAL scope the layer's share of the global budget is computed by the controller and then
// balanced in the same way.
#include "sparsity/ese.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "sparsity/policy.hpp"

namespace dsg {

std::vector<int64_t> nonzeros_per_partition(const Tensor& weights, int partitions) {
  return nonzeros_per_partition(std::vector<const Tensor*>{&weights}, partitions);
}

std::vector<int64_t> nonzeros_per_partition(const std::vector<const Tensor*>& weights, int partitions,
                                            int64_t row_begin, int64_t row_end) {
  if (partitions < 1) throw Error(strfmt("nonzeros_per_partition: partitions must be >= 1, got %d", partitions));
  std::vector<int64_t> nnz(size_t(partitions), 0);
  for (const Tensor* w : weights) {
    if (w->num_axes() < 1) throw Error("nonzeros_per_partition: the weight tensor has no axes");
    const int64_t rows = w->shape(0);
    const int64_t cols = rows > 0 ? w->count() / rows : 0;
    const int64_t end = row_end < 0 ? rows : std::min(row_end, rows);
    const float* d = w->data();
    for (int64_t r = row_begin; r < end; ++r) {
      int64_t count = 0;
      for (int64_t c = 0; c < cols; ++c) count += d[r * cols + c] != 0.0f;
      nnz[size_t(r % partitions)] += count;
    }
  }
  return nnz;
}

namespace {

double max_over_mean(const std::vector<int64_t>& nnz) {
  int64_t max = 0, sum = 0;
  for (int64_t v : nnz) max = std::max(max, v), sum += v;
  const double mean = double(sum) / double(nnz.size());
  return mean > 0 ? double(max) / mean : 1.0;
}

class EsePolicy : public SparsityPolicy {
 public:
  using SparsityPolicy::SparsityPolicy;
  const char* type() const override { return "ese"; }

  // "non-zeros per partition max/mean 1.000 over N partitions" (1.0 = perfectly balanced); for
  // the LSTM followed by, per gate, the density of its W_x and W_h rows and its own max/mean:
  // "; gate i: W_x 9.5% W_h 11.2% dense, max/mean 1.000; gate f: ...".
  std::string detail() const override {
    const auto blobs = const_blobs();
    const int n = param_.num_partitions();
    std::string out = strfmt("non-zeros per partition max/mean %.3f over %d partitions",
                             max_over_mean(nonzeros_per_partition(blobs, n)), n);
    const auto gates = gate_names();
    if (gates.size() < 2) return out;
    const int64_t rows = blobs[0]->shape(0), block = rows / int64_t(gates.size());
    for (size_t g = 0; g < gates.size(); ++g) {
      const int64_t r0 = int64_t(g) * block, r1 = r0 + block;
      out += "; gate " + gates[g] + ":";
      for (size_t b = 0; b < blobs.size(); ++b) {
        const int64_t cols = blobs[b]->count() / rows;
        int64_t nnz = 0;
        for (int64_t i = r0 * cols; i < r1 * cols; ++i) nnz += blobs[b]->data()[i] != 0.0f;
        out += strfmt(" %s %.1f%%", blob_name(b).c_str(), 100.0 * double(nnz) / double(block * cols));
      }
      out += strfmt(" dense, max/mean %.3f", max_over_mean(nonzeros_per_partition(blobs, n, r0, r1)));
    }
    return out;
  }

  // Base checks, then num_partitions >= 1, FINE granularity, weight blobs with the same rows and
  // rows per gate block % num_partitions == 0.
  void validate() const override {
    SparsityPolicy::validate();
    const std::string where = "layer '" + layer_.name() + "' sparsity_param (policy ese): ";
    const auto blobs = const_blobs();
    const Tensor& w = *blobs[0];
    const int n = param_.num_partitions();
    if (n < 1) throw Error(where + strfmt("num_partitions must be >= 1, got %d", n));
    if (param_.granularity() != SparsityParameter::FINE)
      throw Error(where + "granularity must be FINE (load balancing counts single weights), got " +
                  SparsityParameter::Granularity_Name(param_.granularity()));
    for (const Tensor* b : blobs)
      if (b->num_axes() < 1 || b->shape(0) != w.shape(0))
        throw Error(where + "the weight blobs " + w.shape_string() + " and " + b->shape_string() +
                    " do not have the same number of rows");
    const int64_t m = w.shape(0);
    const int64_t gates = int64_t(gate_names().size());
    if (gates > 1 && m % gates != 0)
      throw Error(where + strfmt("weights %s do not split into %lld gate blocks", w.shape_string().c_str(),
                                 static_cast<long long>(gates)));
    const int64_t rows = m / gates;
    if (rows % n != 0) {
      if (gates > 1)
        throw Error(where + strfmt("each of the %lld gate blocks of weights %s has H = %lld rows, which "
                                   "num_partitions N = %d does not divide (H %% N = %lld); every partition "
                                   "must get the same number of rows of every gate",
                                   static_cast<long long>(gates), w.shape_string().c_str(),
                                   static_cast<long long>(rows), n, static_cast<long long>(rows % n)));
      throw Error(where + strfmt("weights %s have M = %lld rows, which num_partitions N = %d does not divide "
                                 "(M %% N = %lld); every partition must get the same number of rows",
                                 w.shape_string().c_str(), static_cast<long long>(m), n,
                                 static_cast<long long>(m % n)));
    }
  }

 protected:
  void compute_mask(float sparsity, std::vector<uint8_t>& mask) const override {
    const auto blobs = const_blobs();
    const std::vector<float> d = weight_values();
    const int n = param_.num_partitions();
    const int64_t rows = blobs[0]->shape(0);
    const int64_t gates = int64_t(gate_names().size());
    const int64_t block = rows / gates;
    std::vector<int64_t> cols, offset;
    int64_t total_cols = 0, off = 0;
    for (const Tensor* b : blobs) {
      cols.push_back(b->count() / rows);
      offset.push_back(off);
      total_cols += cols.back();
      off += b->count();
    }
    const int64_t per_partition = (block / n) * total_cols;
    double k = std::round((1.0 - double(sparsity)) * double(per_partition));
    const size_t keep = size_t(std::clamp(k, 1.0, double(std::max<int64_t>(per_partition, 1))));
    mask.assign(d.size(), 0);
    std::vector<float> score;
    std::vector<int64_t> index;
    for (int64_t g = 0; g < gates; ++g)
      for (int p = 0; p < n; ++p) {
        score.clear();
        index.clear();
        for (int64_t r = g * block + p; r < (g + 1) * block; r += n)
          for (size_t b = 0; b < blobs.size(); ++b)
            for (int64_t c = 0; c < cols[b]; ++c) {
              const int64_t i = offset[b] + r * cols[b] + c;
              score.push_back(std::fabs(d[size_t(i)]));
              index.push_back(i);
            }
        std::vector<uint8_t> kept = keep_top(score, keep);
        for (size_t j = 0; j < kept.size(); ++j) mask[size_t(index[j])] = kept[j];
      }
  }

 private:
  std::vector<const Tensor*> const_blobs() const {
    std::vector<const Tensor*> out;
    for (const Tensor* t : weight_tensors()) out.push_back(t);
    return out;
  }
  // Names of the row blocks (gates) the rows split into ("i f o g" for the LSTM, one block otherwise).
  std::vector<std::string> gate_names() const { return layer_.weight_row_blocks(); }
  // The name of the b-th weight blob (in mask order).
  std::string blob_name(size_t b) const { return layer_.blob_name(layer_.weight_blobs()[b]); }
};

}  // namespace

DSG_REGISTER_POLICY("ese", EsePolicy);

}  // namespace dsg
