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
// Decisions (clustering at quantize()) run on the host, reading the weights across once (a
// logged, explicit transfer); the per-weight work of every update runs through ops_for(device())
// (runtime/ops.hpp) on the device the weights live on, with the codes kept there
// (runtime/device_array.hpp). On a device, an update reads back only per-code sums (at most
// 2^bits doubles) and uploads the small value table.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/device_array.hpp"
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

  // The device the weights live on (the solver's; the CPU by default).
  void set_device(const Device& device);
  const Device& device() const { return device_; }

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
  // Writes codebook_[codes_[i]] into the weight blob (on device()).
  void write_weights();
  // After codes_ changed on the host: refreshes the device copy (nothing on the CPU; logged).
  void codes_changed();
  // codes_ in device()'s memory.
  const uint8_t* codes_on_device() const;
  uint8_t* mutable_codes_on_device();
  // The device copy of the codes (its host() reads them back).
  const DeviceArray<uint8_t>& device_codes() const { return device_codes_; }
  // `table` (host floats) in device()'s memory: the table itself on the CPU, else an upload.
  const float* table_on_device(const float* table, int size);
  // Per-code sums of `x` (device()'s memory, one value per weight, by codes_on_device()) for codes
  // below `codes`, left in device()'s memory (deterministic chunked sums in double).
  const double* code_sums_on_device(const float* x, int codes);
  // A scratch table of `size` floats in device()'s memory.
  float* device_table(int size);
  // Called by set_device() for state a method keeps on the device.
  virtual void device_changed() {}
  bool on_cpu() const { return device_.type == DeviceType::CPU; }

  QuantizationParameter param_;
  Layer& layer_;
  bool active_ = false;
  std::vector<float> codebook_;
  std::vector<uint8_t> codes_;

 private:
  Device device_;
  DeviceArray<uint8_t> device_codes_;
  DeviceArray<float> device_table_;
  DeviceArray<double> code_part_, code_sums_;
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
