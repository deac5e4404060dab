// Trained Ternary Quantization (Zhu et al. 2017), as the official code computes it:
//   delta = t * max|w~|;  w_t = W_p (w~ > delta), 0 (|w~| <= delta), -W_n (w~ < -delta);
//   dL/dW_p = sum_{w~ > delta} g,  dL/dW_n = -sum_{w~ < -delta} g   (w_t = -W_n gives the minus);
//   dL/dw~  = W_p g, g, W_n g on the three sets.
// The weight blob holds w_t for forward/backward; around the solver's update it holds the latent
// w~ so that the solver (momentum, weight decay) trains the latent weights; W_p and W_n take plain
// SGD steps at the layer's learning rate times scale_lr_mult. Difference from the official code: W_p and W_n start at
// the mean magnitude of their sets instead of 1.0, so quantizing a trained model does not rescale
// it (documented in the README).
#include <algorithm>
#include <cmath>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/log.hpp"
#include "runtime/ops.hpp"
#include "sparsity/code_kernels.hpp"
#include "sparsity/quantizer.hpp"
#include "sparsity/ttq_kernels.hpp"

namespace dsg {
namespace {

class TtqQuantizer : public Quantizer {
 public:
  using Quantizer::Quantizer;
  const char* type() const override { return "ttq"; }

  void validate() const override {
    Quantizer::validate();
    if (!(param_.threshold() > 0 && param_.threshold() < 1))
      throw Error("layer '" + layer_.name() + strfmt("' quant_param: threshold must be in (0, 1), got %g", param_.threshold()));
  }

  void quantize() override {
    const Tensor& w = *layer_.blobs()[0];
    const TransferStats before = transfer_stats();
    latent_.assign(w.data(), w.data() + w.count());  // the first ternarisation runs on the host
    if (transfer_stats().to_host_bytes != before.to_host_bytes)
      log_info(strfmt("    Quantization %s: weights read to the host to ternarise (%llu bytes)", layer_.name().c_str(),
                      static_cast<unsigned long long>(transfer_stats().to_host_bytes - before.to_host_bytes)));
    assign_codes();
    codes_changed();
    double pos = 0, neg = 0;
    int64_t np = 0, nn = 0;
    for (size_t i = 0; i < latent_.size(); ++i) {
      if (codes_[i] == 1) pos += latent_[i], ++np;
      if (codes_[i] == 2) neg -= latent_[i], ++nn;
    }
    wp_ = np ? float(pos / double(np)) : 1.0f;
    wn_ = nn ? float(neg / double(nn)) : 1.0f;
    device_changed();
    active_ = true;
    publish();
  }

  void before_update(float rate) override {
    if (!active_) return;
    Tensor& w = *layer_.blobs()[0];
    const DeviceOps& ops = ops_for(device());
    float* g = w.mutable_diff(device());
    const uint8_t* codes = codes_on_device();
    float lr = rate * param_.scale_lr_mult() *
               (layer_.param().param_size() > 0 ? layer_.param().param(0).lr_mult() : 1.0f);
    if (!on_cpu()) {
      // dL/dW_p, dL/dW_n and the scales stay on the device.
      const Device& d = device();
      const double* sums = code_sums_on_device(g, 3);
      ops.scale_by_code(w.count(), codes, device_scales_.on(d), 3, g);
      launch(d, 1, TtqScaleStep{sums, lr, device_scales_.mutable_on(d)}, 1);
      host_stale_ = true;
      ops.copy(w.count(), device_latent_.on(d), w.mutable_data(d));
      return;
    }
    double sums[3];
    ops.sum_by_code(w.count(), codes, g, 3, sums);
    const double dwp = sums[1], dwn = -sums[2];
    const float scales[3] = {1.0f, wp_, wn_};
    ops.scale_by_code(w.count(), codes, scales, 3, g);
    wp_ = float(wp_ - lr * dwp);
    wn_ = float(wn_ - lr * dwn);
    // The solver updates the latent weights.
    ops.copy(w.count(), latent_.data(), w.mutable_data(device()));
  }

  void after_update() override {
    if (!active_) return;
    const Tensor& w = *layer_.blobs()[0];
    if (on_cpu()) {
      latent_.assign(w.data(), w.data() + w.count());
      assign_codes();
    } else {
      // Latent copy and codes on the device: nothing comes back to the host.
      const Device& d = device();
      const int64_t n = w.count();
      float* latent = device_latent_.mutable_on(d);
      ops_for(d).copy(n, w.data(d), latent);
      const int64_t chunk = 4096, parts = std::max<int64_t>(1, (n + chunk - 1) / chunk);
      scratch_.resize(size_t(parts + 1));
      float* part = scratch_.mutable_on(d);
      launch(d, parts, TtqAbsMaxChunks{latent, n, chunk, part}, 1);
      launch(d, 1, TtqMaxOfParts{part, parts, part + parts}, 1);
      launch(d, n, TtqCodes{latent, part + parts, param_.threshold(), mutable_codes_on_device()});
      host_stale_ = true;
    }
    publish();
  }

  std::string describe() const override {
    if (!active_) return "ttq, not quantized yet";
    sync_host();  // on a device: a read of the codes at display time
    int64_t zeros = std::count(codes_.begin(), codes_.end(), uint8_t(0));
    return strfmt("ttq W_p %.4g W_n %.4g, %.1f%% zeros", wp_, wn_, 100.0 * double(zeros) / double(codes_.size()));
  }

  void save(QuantizerState* state) const override {
    sync_host();
    Quantizer::save(state);
    BlobProto* latent = state->mutable_latent();
    latent->mutable_shape()->add_dim(int64_t(latent_.size()));
    for (float v : latent_) latent->add_data(v);
  }

  void load(const QuantizerState& state) override {
    Quantizer::load(state);
    host_stale_ = false;
    if (!active_) return;
    if (codebook_.size() != 3 || int64_t(state.latent().data_size()) != layer_.blobs()[0]->count())
      throw Error("the snapshot's TTQ state for layer '" + layer_.name() + "' is incomplete");
    latent_.assign(state.latent().data().begin(), state.latent().data().end());
    wp_ = codebook_[1];
    wn_ = -codebook_[2];
    device_changed();
  }

 protected:
  // Uploads the latent weights to the device (nothing on the CPU).
  void device_changed() override {
    if (on_cpu() || latent_.empty()) return;
    device_latent_.resize(latent_.size());
    std::copy(latent_.begin(), latent_.end(), device_latent_.mutable_host());
    device_latent_.on(device());
    device_scales_.resize(3);
    float* scales = device_scales_.mutable_host();
    scales[0] = 1.0f, scales[1] = wp_, scales[2] = wn_;
    device_scales_.on(device());
  }

 private:
  void assign_codes() {
    float m = 0;
    for (float v : latent_) m = std::max(m, std::fabs(v));
    const float delta = param_.threshold() * m;
    codes_.assign(latent_.size(), 0);
    for (size_t i = 0; i < latent_.size(); ++i) codes_[i] = latent_[i] > delta ? 1 : latent_[i] < -delta ? 2 : 0;
  }
  void publish() {
    if (on_cpu()) {
      codebook_ = {0.0f, wp_, -wn_};
      write_weights();
      return;
    }
    // The table {0, W_p, -W_n} from the scales on the device (the host codebook_ is refreshed by
    // sync_host).
    const Device& d = device();
    float* table = device_table(3);
    launch(d, 3, TtqTable{device_scales_.on(d), table}, 1);
    Tensor& w = *layer_.blobs()[0];
    ops_for(d).lookup(w.count(), codes_on_device(), table, 3, w.mutable_data(d));
    host_stale_ = true;
  }

  // On a device, the codes and latent weights are kept there; the host copies (codes_, latent_)
  // are refreshed for display and snapshots only.
  void sync_host() const {
    if (!host_stale_) return;
    auto* self = const_cast<TtqQuantizer*>(this);
    const size_t n = self->latent_.size();
    const float* latent = device_latent_.host();
    self->latent_.assign(latent, latent + n);
    const uint8_t* codes = device_codes().host();
    self->codes_.assign(codes, codes + n);
    const float* scales = device_scales_.host();
    self->wp_ = scales[1];
    self->wn_ = scales[2];
    self->codebook_ = {0.0f, wp_, -wn_};
    host_stale_ = false;
  }

  std::vector<float> latent_;
  float wp_ = 1.0f, wn_ = 1.0f;
  DeviceArray<float> device_latent_;
  DeviceArray<float> scratch_;  // per-chunk maxima, then the maximum
  DeviceArray<float> device_scales_;  // {1, W_p, W_n} on a device
  mutable bool host_stale_ = false;
};

}  // namespace

DSG_REGISTER_QUANTIZER("ttq", TtqQuantizer);

}  // namespace dsg
