// Deep Compression weight sharing (Han et al. 2016, Sec. 3): 2^bits - 1 shared values per layer
// found by 1-D k-means over the non-zero weights (code 0 stays the zero weight, so pruned weights
// remain pruned), then centroid fine-tuning: every weight of cluster k receives the cluster's
// summed gradient dC_k = sum_{i in k} dL/dw_i, the solver takes its step (momentum and weight
// decay included), and the cluster's updated members are averaged back into one centroid.
#include <cmath>
#include <functional>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/log.hpp"
#include "runtime/ops.hpp"
#include "sparsity/kmeans.hpp"
#include "sparsity/quantizer.hpp"

namespace dsg {
namespace {

class KMeansQuantizer : public Quantizer {
 public:
  using Quantizer::Quantizer;
  const char* type() const override { return "kmeans"; }

  void validate() const override {
    Quantizer::validate();
    if (param_.bits() < 1 || param_.bits() > 8)
      throw Error("layer '" + layer_.name() + strfmt("' quant_param: bits must be 1..8 for KMEANS, got %u", param_.bits()));
  }

  void quantize() override {
    const Tensor& w = *layer_.blobs()[0];
    const TransferStats before = transfer_stats();
    const float* d = w.data();  // clustering runs on the host
    if (transfer_stats().to_host_bytes != before.to_host_bytes)
      log_info(strfmt("    Quantization %s: weights read to the host for clustering (%llu bytes)", layer_.name().c_str(),
                      static_cast<unsigned long long>(transfer_stats().to_host_bytes - before.to_host_bytes)));
    std::vector<float> values;
    for (int64_t i = 0; i < w.count(); ++i)
      if (d[i] != 0.0f) values.push_back(d[i]);
    const int k = (1 << param_.bits()) - 1;
    std::vector<float> centroids =
        kmeans_init(values, k, param_.init(), std::hash<std::string>()(layer_.name()));
    std::vector<int> assign = kmeans_1d(values, centroids, int(param_.kmeans_iterations()));
    codebook_.assign(1, 0.0f);
    codebook_.insert(codebook_.end(), centroids.begin(), centroids.end());
    codes_.assign(size_t(w.count()), 0);
    size_t next = 0;
    for (int64_t i = 0; i < w.count(); ++i)
      if (d[i] != 0.0f) codes_[size_t(i)] = uint8_t(1 + assign[next++]);
    codes_changed();
    write_weights();
    counts_.clear();
    active_ = true;
  }

  void before_update(float) override {
    if (!active_) return;
    Tensor& w = *layer_.blobs()[0];
    const DeviceOps& ops = ops_for(device());
    float* g = w.mutable_diff(device());
    const int clusters = int(codebook_.size());
    std::vector<double> sums(codebook_.size(), 0.0);
    if (on_cpu()) sums = cluster_gradient_sums(codes_, g, codebook_.size());
    else ops.sum_by_code(w.count(), codes_on_device(), g, clusters, sums.data());  // reads back `clusters` sums
    std::vector<float> table(size_t(clusters), 0.0f);
    for (int c = 1; c < clusters; ++c) table[size_t(c)] = float(sums[size_t(c)]);
    ops.lookup(w.count(), codes_on_device(), table_on_device(table.data(), clusters), clusters, g);
  }

  void after_update() override {
    if (!active_) return;
    const Tensor& w = *layer_.blobs()[0];
    std::vector<double> sum(codebook_.size(), 0.0);
    ops_for(device()).sum_by_code(w.count(), codes_on_device(), w.data(device()), int(codebook_.size()), sum.data());
    if (counts_.size() != codebook_.size()) {  // the codes change only at quantize() / load()
      counts_.assign(codebook_.size(), 0);
      for (uint8_t c : codes_) ++counts_[c];
    }
    for (size_t c = 1; c < codebook_.size(); ++c)
      if (counts_[c]) codebook_[c] = float(sum[c] / double(counts_[c]));
    write_weights();
  }

  void load(const QuantizerState& state) override {
    Quantizer::load(state);
    counts_.clear();
  }

  std::string describe() const override {
    if (!active_) return strfmt("k-means %u bits, not quantized yet", param_.bits());
    size_t used = 0;
    std::vector<bool> seen(codebook_.size(), false);
    for (uint8_t c : codes_)
      if (c && !seen[c]) seen[c] = true, ++used;
    return strfmt("k-means %u bits, %zu of %zu shared values in use", param_.bits(), used, codebook_.size() - 1);
  }

 private:
  std::vector<int64_t> counts_;  // members per code, counted once per set of codes
};

}  // namespace

DSG_REGISTER_QUANTIZER("kmeans", KMeansQuantizer);

}  // namespace dsg
