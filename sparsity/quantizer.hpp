// Quantizer: what a layer's quant_param becomes. Like a SparsityPolicy it never edits a layer's
// internals: it owns the quantized form of the layer's weight blob (blobs()[0]) and keeps the blob
// holding exactly the quantized values, so forward, backward, the TEST net and snapshots all see
// the quantized model. The SparsityController drives it:
//   quantize()            at the start of a QUANTIZE phase (cluster / ternarise; activates);
//   before_update(rate)   turns the blob's gradient into the update its method prescribes
//                         (k-means: each weight gets its cluster's summed gradient; TTQ: learns
//                         W_p / W_n and hands the latent weights to the solver);
//   after_update()        projects the updated blob back onto the quantized values.
// Pruned weights (code 0) stay exactly zero. Registered by method name (DSG_REGISTER_QUANTIZER).
// Decisions (clustering, thresholds) run on the host; the per-weight loops run through the CPU
// DeviceOps (runtime/ops.hpp), as the codes and codebooks are host memory.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/registry.hpp"

namespace dsg {

class Layer;

class Quantizer {
 public:
  Quantizer(const QuantizationParameter& param, Layer& layer);
  virtual ~Quantizer() = default;
  virtual const char* type() const = 0;

  const QuantizationParameter& param() const { return param_; }
  Layer& layer() const { return layer_; }
  const std::string& layer_name() const;
  bool active() const { return active_; }

  // Checks the configuration against the (set-up) layer; throws dsg::Error with the reason.
  virtual void validate() const;
  virtual void quantize() = 0;
  virtual void before_update(float rate) = 0;
  virtual void after_update() = 0;
  // One line for the training log.
  virtual std::string describe() const = 0;

  // The value table and one code per weight (codebook[codes[i]] == weight i exactly; code 0 is
  // the zero weight). Valid once active.
  const std::vector<float>& codebook() const { return codebook_; }
  const std::vector<uint8_t>& codes() const { return codes_; }

  virtual void save(QuantizerState* state) const;
  virtual void load(const QuantizerState& state);

 protected:
  // Writes codebook_[codes_[i]] into the weight blob.
  void write_weights();

  QuantizationParameter param_;
  Layer& layer_;
  bool active_ = false;
  std::vector<float> codebook_;
  std::vector<uint8_t> codes_;
};

using QuantizerRegistry = Registry<Quantizer, const QuantizationParameter&, Layer&>;
inline QuantizerRegistry& quantizer_registry() { return QuantizerRegistry::instance("quantizer"); }

struct QuantizerRegistrar {
  QuantizerRegistrar(const char* name, QuantizerRegistry::Creator creator) {
    quantizer_registry().add(name, std::move(creator));
  }
};

// The registry key for a method ("kmeans", "ttq").
std::string quantizer_name(QuantizationParameter::Method method);

}  // namespace dsg

#define DSG_REGISTER_QUANTIZER(name_string, Class)                                                          \
  static ::dsg::QuantizerRegistrar dsg_quantizer_registrar_##Class(                                         \
      name_string,                                                                                          \
      [](const ::dsg::QuantizationParameter& p, ::dsg::Layer& l) -> std::unique_ptr<::dsg::Quantizer> {     \
        return std::make_unique<Class>(p, l);                                                               \
      })
