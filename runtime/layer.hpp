// Layer: the unit of the graph (Caffe's Layer). The public setup/forward/backward are
// non-virtual: they check arity and the device, then call the per-device hooks a subclass
// implements. Learnable parameters live in blobs(); the Net moves them into one contiguous arena
// after setup, so a layer must not cache raw parameter pointers across calls.
//
// To add a layer: derive, implement type()/reshape()/forward_cpu()/backward_cpu() (and
// layer_setup() if it has parameters), and register it with DSG_REGISTER_LAYER in its .cpp. A layer
// with CUDA kernels also implements forward_cuda()/backward_cuda() (usually through
// ops_for(ctx.device), runtime/ops.hpp) and says so in supports().
#pragma once
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/context.hpp"
#include "runtime/registry.hpp"
#include "runtime/tensor.hpp"
#include "runtime/weight_operator.hpp"

namespace dsg {

using TensorVec = std::vector<Tensor*>;

// How a layer's output units depend on its input units, as far as known-zero units go: the one
// channel-propagation pass (runtime/channel_pass.hpp) follows these descriptions for training-time
// structured sparsity and for offline thinning, so nothing outside a layer's file needs to know
// its type. A "unit" is a channel of an [N, C, ...] blob (C planes of H*W elements per sample) or
// a feature of an [N, F] blob.
struct ChannelFlow {
  enum Kind {
    kElementwise,  // every top element depends only on the same element of bottom 0 (per-channel
                   // parameters allowed): ReLU, TanH, Sigmoid, Dropout, Split, BatchNorm, Scale
    kPool,         // top 0 keeps bottom 0's channels at a new spatial size (Pooling)
    kFlatten,      // the per-sample element order is unchanged when the batch axis is kept (Flatten, Reshape)
    kConcat,       // top 0 joins the bottoms along `axis`
    kEltwise,      // top 0 joins the bottoms element by element (Eltwise)
    kProducer,     // new units computed by a weight GEMM (Convolution, InnerProduct)
    kOpaque,       // anything else: every unit of every top may be non-zero
  };
  enum Inputs {
    kNoInputs,   // the layer cannot skip input units
    kChannels,   // active_inputs() index the channels of every bottom (Convolution)
    kFeatures,   // active_inputs() index the features of bottom 0 along axis 1 (InnerProduct)
  };
  Kind kind = kOpaque;
  bool zero_preserving = false;     // kElementwise: a zero input unit gives a zero output unit
  bool rectifier = false;           // kElementwise: passes positive inputs and suppresses negative ones
                                    // (ReLU); DSG's selection of the largest outputs assumes one follows
  int axis = 1;                     // kConcat: the (canonical) axis joined
  bool intersect = false;           // kEltwise: a unit survives only where every input has it (PROD)
  Inputs inputs = kNoInputs;        // kProducer
  bool rows_are_outputs = false;    // kProducer: weight rows are output units, so the layer can compute a
                                    // subset of them (active_outputs) and FILTER pruning applies
  int groups = 1;                   // kProducer: weight groups (a grouped convolution); thinning needs 1
  int unit_axis = 1;                // kProducer: the top axis indexing output units (InnerProduct's axis);
                                    // the propagation pass follows units on axis 1 only
  bool shape_follows_input = true;  // kFlatten: the configured output shape follows a thinner input
};

// The structured modes a layer may be asked to run in, besides its dense forward/backward. A layer
// states per device which it has kernels for (Layer::supports); the base class refuses to run a
// mode it does not support instead of silently falling back.
enum class LayerMode {
  kDense,           // the plain forward and backward
  kActiveOutputs,   // computes only active_outputs() (FILTER pruning, approximate dropout, DSG)
  kActiveInputs,    // skips the known-zero input units listed by active_inputs()
  kWeightOperator,  // multiplies through an installed WeightOperator (compressed inference)
  kFixedPoint,      // simulates fixed_point_param
  kSparseBackward,  // structured_backward_param (structurally sparse gate gradients)
  kDynamicSelection,  // chooses per pass what to compute: DSG (dsg_param), synapse or unit dropping
                      // patterns (approx_dropout_param, ApproxDropout / FeatureMapDropout layers)
};
const char* layer_mode_name(LayerMode mode);

// How a layer that judges class scores against labels reads them (Layer::label_scoring).
struct LabelScoring {
  int axis = 1;                   // the class axis of the scores (bottom 0); may be negative
  bool has_ignore_label = false;  // positions whose label (bottom 1) equals ignore_label are skipped
  int ignore_label = 0;
};

// Multiply-accumulates of a layer's last forward and backward pass (Convolution, InnerProduct):
// what the dense layer would do and what was done. `search` counts the operations spent choosing
// what to compute (DSG's random projection additions and estimate MACs).
struct LayerMacs {
  double dense_forward = 0, dense_backward = 0;
  double forward = 0, backward = 0, search = 0;
};

class Layer {
 public:
  explicit Layer(const LayerParameter& param);
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // Checks bottom/top counts, creates parameters (filled from `rng`) and shapes the tops.
  void setup(const TensorVec& bottom, const TensorVec& top, std::mt19937_64& rng);
  // Reshapes the tops for the current bottoms, runs forward on ctx.device and returns the
  // weighted loss: sum over tops of loss_weight(i) * sum(top[i]).
  float forward(const TensorVec& bottom, const TensorVec& top, const Context& ctx);
  // Computes bottom diffs (where propagate_down[i]) and accumulates (+=) parameter diffs.
  void backward(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                const Context& ctx);

  virtual const char* type() const = 0;
  const LayerParameter& param() const { return param_; }
  const std::string& name() const { return param_.name(); }
  // Hash of the layer name: the layer component of counter-based random streams.
  uint32_t key() const { return key_; }

  // Arity constraints; -1 means unconstrained.
  virtual int exact_num_bottoms() const { return -1; }
  virtual int min_num_bottoms() const { return -1; }
  virtual int max_num_bottoms() const { return -1; }
  virtual int exact_num_tops() const { return -1; }
  virtual int min_num_tops() const { return -1; }
  virtual int max_num_tops() const { return -1; }
  // Whether the net may ask this layer for the gradient of bottom `index` (false for labels).
  virtual bool allow_backward_to(int bottom_index) const { (void)bottom_index; return true; }
  // Whether the top may share its buffer with the bottom (in-place) — true for elementwise layers.
  virtual bool allows_in_place() const { return false; }
  // Whether the layer has kernels for `mode` on `device` (for CUDA: device code in forward_cuda /
  // backward_cuda; whether this build has a CUDA backend is checked separately). Running a mode it
  // does not support is an error (no silent fallback); forward/backward check every mode in use
  // (modes_in_use()).
  virtual bool supports(DeviceType device, LayerMode mode) const {
    return device == DeviceType::CPU && mode == LayerMode::kDense;
  }
  bool supports(DeviceType device) const { return supports(device, LayerMode::kDense); }
  // The modes the layer's current configuration and structure ask for (kDense always first).
  std::vector<LayerMode> modes_in_use() const;

  // How output units follow input units (see ChannelFlow); opaque unless a layer says otherwise.
  virtual ChannelFlow channel_flow() const { return {}; }
  // Whether the layer reads class scores (Softmax, Accuracy, losses): removing units of its input
  // would change the label space, so FILTER pruning must not reach it.
  virtual bool reads_class_scores() const { return default_loss_weight(0) != 0.0f; }
  // Layers that compare class scores (bottom 0) with labels (bottom 1), such as Accuracy and the
  // softmax loss: how they read them; nullopt for every other layer. Evaluation tools take the
  // scores a net is judged by from these layers. Answered from the LayerParameter (no setup needed).
  virtual std::optional<LabelScoring> label_scoring() const { return std::nullopt; }
  // Layers whose bottom 0 holds integer symbols indexing a table (Embed): how many symbols they
  // accept (0 for every other layer). Answered from the LayerParameter (no setup needed).
  virtual int64_t input_symbols() const { return 0; }
  // Thinning: rewrites `param` so that the layer has `outputs` output units. Only layers whose
  // channel_flow() has rows_are_outputs implement it; the default throws.
  virtual void set_num_outputs(LayerParameter& param, int outputs) const;
  // Names of the row blocks of the weight blobs (the LSTM's gates "i f o g"; one unnamed block
  // otherwise) and of blob i, for per-block reports (ESE's balance).
  virtual std::vector<std::string> weight_row_blocks() const { return {""}; }
  virtual std::string blob_name(int blob_index) const;
  // Data layers produce inputs and have no backward.
  virtual bool is_data_layer() const { return false; }

  // Learnable parameters (and persistent state such as BatchNorm statistics).
  std::vector<std::shared_ptr<Tensor>>& blobs() { return blobs_; }
  const std::vector<std::shared_ptr<Tensor>>& blobs() const { return blobs_; }
  // The blobs a sparsity policy prunes, the codec stores sparsely and the exporters treat as
  // weights, in mask order (the LSTM: W_xc and W_hc, {0, 2}). Every listed blob has the same
  // shape(0) (its output rows); blob 0 comes first. Empty for layers without prunable weights
  // (their blobs, if any, are biases, per-channel parameters or state).
  virtual std::vector<int> weight_blobs() const { return {}; }
  // Whether blob i is learned by the solver (false for state such as BatchNorm statistics).
  virtual bool blob_is_learnable(int blob_index) const { (void)blob_index; return true; }
  // Whether backward should compute the diff of parameter i (false when its lr_mult is 0 or the
  // blob is not learnable).
  bool param_propagate_down(int i) const { return i < int(param_propagate_down_.size()) && param_propagate_down_[i]; }
  void set_param_propagate_down(int i, bool value);

  // Structured sparsity, set by the sparsity runtime (sparsity/structure.hpp); empty = dense.
  // active_outputs: the output channels (filters / neurons) that are computed; the others are
  // exactly zero and a layer may skip them (a smaller GEMM M). active_inputs: the input channels
  // that can be non-zero; the others are known zero and a layer may skip them (a smaller K).
  const std::vector<int>& active_outputs() const { return active_outputs_; }
  const std::vector<int>& active_inputs() const { return active_inputs_; }
  void set_active_outputs(std::vector<int> kept) { active_outputs_ = std::move(kept); }
  void set_active_inputs(std::vector<int> kept) { active_inputs_ = std::move(kept); }

  // Dynamic structured sparsity (approximate random dropout). Net::forward asks every layer that
  // drops_units() for this pass's pattern before running the net: a layer returns true when its
  // kept units changed and lists them in dynamic_kept() (empty = all kept; a unit is a feature of
  // an [N, C] top or a channel of an [N, C, H, W] top, shared by the whole mini-batch). The Net
  // then lets the layer producing its bottom compute only those units (a smaller GEMM M) and the
  // consumers skip the dropped ones (a smaller K).
  virtual bool drops_units() const { return false; }
  virtual bool sample_dynamic_structure(const Context& ctx) { (void)ctx; return false; }
  const std::vector<int>& dynamic_kept() const { return dynamic_kept_; }

  // Dynamic Sparse Graph (layers/dsg_select.hpp): the output mask of the last forward, one byte
  // per element of top[0] (1 = computed; the other outputs are exactly 0), or nullptr when the
  // layer does not select its outputs per pass. When double_mask_output() is true the Net applies
  // the same mask again after the BatchNorm (and Scale) that follows (DSG's double-mask selection).
  virtual const std::vector<uint8_t>* dynamic_output_mask() const { return nullptr; }
  // The same mask in `device`'s memory (what the Net's double mask reads on that device), nullptr
  // when the layer keeps it on the host only. The default serves the host copy to the CPU; a layer
  // whose device code selects on the device overrides it.
  virtual const uint8_t* dynamic_output_mask_on(const Device& device) const {
    const std::vector<uint8_t>* mask = dynamic_output_mask();
    return mask && device.type == DeviceType::CPU ? mask->data() : nullptr;
  }
  virtual bool double_mask_output() const { return false; }

  // Structurally sparse backward (structured_backward_param; the LSTM): switched per iteration by
  // the sparsity schedule (the mixed sparse/dense schedule). Layers without it ignore the call.
  virtual void set_sparse_backward(bool on) { (void)on; }

  // Multiply-accumulates of the last forward / backward (zeros for layers without GEMMs).
  virtual LayerMacs macs() const { return {}; }

  // Inference only: computes the weight product through `op` instead of the dense weight blob
  // (nullptr restores the blob). Returns false when the layer cannot use one (only InnerProduct
  // and ungrouped, unstructured Convolution can); throws if op's shape does not match the weights.
  virtual bool set_weight_operator(std::shared_ptr<const WeightOperator> op) { (void)op; return false; }
  const WeightOperator* weight_operator() const { return weight_operator_.get(); }

  float loss_weight(int top_index) const;
  void set_loss_weight(int top_index, float weight);
  // Loss weight a top gets when the config gives none (1 for the first top of loss layers).
  virtual float default_loss_weight(int top_index) const { (void)top_index; return 0.0f; }

 protected:
  // One-time setup: read the layer's *_param, create blobs_ and fill them.
  virtual void layer_setup(const TensorVec& bottom, const TensorVec& top, std::mt19937_64& rng) {
    (void)bottom; (void)top; (void)rng;
  }
  // Shape tops (and internal buffers) from the bottoms; called before every forward.
  virtual void reshape(const TensorVec& bottom, const TensorVec& top) = 0;
  virtual void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) = 0;
  virtual void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down,
                            const TensorVec& bottom, const Context& ctx) = 0;
  // The device code: tensors are read and written on ctx.device (Tensor::data(device)) through
  // ops_for(ctx.device) (runtime/ops.hpp) and launch() bodies (runtime/launch.hpp), so the same
  // code runs on a CUDA device and, with ctx.device_code_on_host, on the CPU in tests. The defaults
  // throw (a layer without device code also answers supports(CUDA, ...) with false).
  virtual void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx);
  virtual void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down,
                             const TensorVec& bottom, const Context& ctx);

  // "layer 'conv1' (Convolution): " prefix for error messages.
  std::string where() const;

  LayerParameter param_;
  std::vector<std::shared_ptr<Tensor>> blobs_;
  std::shared_ptr<const WeightOperator> weight_operator_;
  std::vector<int> dynamic_kept_;  // see dynamic_kept()

 private:
  void check_arity(const TensorVec& bottom, const TensorVec& top) const;
  void check_device(const Context& ctx) const;
  // One bit per LayerMode in use (bit m = LayerMode(m)).
  uint32_t mode_bits() const;

  uint32_t key_ = 0;
  std::vector<bool> param_propagate_down_;
  std::vector<float> loss_weights_;
  std::vector<int> active_outputs_, active_inputs_;
};

using LayerRegistry = Registry<Layer, const LayerParameter&>;
inline LayerRegistry& layer_registry() { return LayerRegistry::instance("layer type"); }

// Creates the layer for param.type(); an unknown type lists the known ones.
std::unique_ptr<Layer> create_layer(const LayerParameter& param);

struct LayerRegistrar {
  LayerRegistrar(const char* type, LayerRegistry::Creator creator) { layer_registry().add(type, std::move(creator)); }
};

}  // namespace dsg

#define DSG_REGISTER_LAYER(type_string, Class)                                             \
  static ::dsg::LayerRegistrar dsg_layer_registrar_##Class(                                \
      type_string, [](const ::dsg::LayerParameter& p) -> std::unique_ptr<::dsg::Layer> {   \
        return std::make_unique<Class>(p);                                                 \
      })
