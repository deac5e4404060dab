// Deep Compression weight sharing (Han et al. 2016, Sec. 3): 2^bits - 1 shared values per layer
// found by 1-D k-means over the non-zero weights (code 0 stays the zero weight, so pruned weights
// remain pruned), then centroid fine-tuning: every weight of cluster k receives the cluster's
// summed gradient dC_k = sum_{i in k} dL/dw_i, the solver takes its step (momentum and weight
// decay included), and the cluster's updated members are averaged back into one centroid.
#include <algorithm>
#include <cmath>
#include <functional>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/log.hpp"
#include "runtime/ops.hpp"
#include "sparsity/code_kernels.hpp"
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
    device_changed();
    active_ = true;
  }

  void before_update(float) override {
    if (!active_) return;
    Tensor& w = *layer_.blobs()[0];
    const DeviceOps& ops = ops_for(device());
    float* g = w.mutable_diff(device());
    const int clusters = int(codebook_.size());
    if (!on_cpu()) {
      // Cluster sums and the table on the device: nothing comes back to the host.
      const double* sums = code_sums_on_device(g, clusters);
      float* table = device_table(clusters);
      launch(device(), clusters, KMeansGradTable{sums, table}, 1);
      ops.lookup(w.count(), codes_on_device(), table, clusters, g);
      return;
    }
    const std::vector<double> sums = cluster_gradient_sums(codes_, g, codebook_.size());
    std::vector<float> table(size_t(clusters), 0.0f);
    for (int c = 1; c < clusters; ++c) table[size_t(c)] = float(sums[size_t(c)]);
    ops.lookup(w.count(), codes_on_device(), table.data(), clusters, g);
  }

  void after_update() override {
    if (!active_) return;
    Tensor& w = *layer_.blobs()[0];
    const int clusters = int(codebook_.size());
    count_members();
    if (!on_cpu()) {
      const Device& d = device();
      const double* sums = code_sums_on_device(w.data(d), clusters);
      float* codebook = device_codebook_.mutable_on(d);
      launch(d, clusters, KMeansCentroids{sums, device_counts_.on(d), codebook}, 1);
      ops_for(d).lookup(w.count(), codes_on_device(), codebook, clusters, w.mutable_data(d));
      codebook_stale_ = true;
      return;
    }
    std::vector<double> sum(codebook_.size(), 0.0);
    cpu_ops().sum_by_code(w.count(), codes_.data(), w.data(), clusters, sum.data());
    for (size_t c = 1; c < codebook_.size(); ++c)
      if (counts_[c]) codebook_[c] = float(sum[c] / double(counts_[c]));
    write_weights();
  }

  void save(QuantizerState* state) const override {
    sync_codebook();
    Quantizer::save(state);
  }
  void load(const QuantizerState& state) override {
    Quantizer::load(state);
    counts_.clear();
    codebook_stale_ = false;
    device_changed();
  }

 protected:
  // Uploads the codebook and the member counts (nothing on the CPU).
  void device_changed() override {
    if (on_cpu() || codebook_.empty()) return;
    count_members();
    device_codebook_.resize(codebook_.size());
    std::copy(codebook_.begin(), codebook_.end(), device_codebook_.mutable_host());
    device_codebook_.on(device());
    device_counts_.resize(counts_.size());
    std::copy(counts_.begin(), counts_.end(), device_counts_.mutable_host());
    device_counts_.on(device());
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
  void count_members() {
    if (counts_.size() == codebook_.size()) return;  // the codes change only at quantize() / load()
    counts_.assign(codebook_.size(), 0);
    for (uint8_t c : codes_) ++counts_[c];
  }
  // On a device the centroids are updated there; the host codebook is refreshed for snapshots.
  void sync_codebook() const {
    if (!codebook_stale_) return;
    auto* self = const_cast<KMeansQuantizer*>(this);
    const float* cb = device_codebook_.host();
    self->codebook_.assign(cb, cb + codebook_.size());
    codebook_stale_ = false;
  }

  std::vector<int64_t> counts_;  // members per code, counted once per set of codes
  DeviceArray<float> device_codebook_;
  DeviceArray<int64_t> device_counts_;
  mutable bool codebook_stale_ = false;
};

}  // namespace

DSG_REGISTER_QUANTIZER("kmeans", KMeansQuantizer);

}  // namespace dsg
