// The ONNX exporter's internals (apps/onnx_export.hpp is the interface): the Exporter class that
// builds the graph, shared by its plumbing and op mapping (apps/onnx_export.cpp) and the emitters,
// one file per layer kind (apps/onnx_emit_*.cpp). Only the op mapping is keyed by the layer type;
// which layers are inputs, metrics or losses is asked of the layer.
#pragma once
#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "apps/onnx_export.hpp"
#include "runtime/error.hpp"
#include "runtime/net.hpp"

namespace dsg::onnx_detail {

using Dims = std::vector<int64_t>;

inline Dims dims_of(const std::vector<int>& shape) { return Dims(shape.begin(), shape.end()); }

inline std::string dims_string(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + ")";
}

inline int64_t product(const Dims& d) {
  int64_t p = 1;
  for (int64_t v : d) p *= v;
  return p;
}

inline std::string describe(const Layer& l) { return "layer '" + l.name() + "' (" + l.type() + ")"; }

[[noreturn]] inline void fail(const Layer& l, const std::string& why) {
  throw Error(describe(l) + ": cannot export to ONNX: " + why);
}

// How the exporter treats a layer (decided from the layer's description and the op mapping).
enum class Kind {
  Input,       // data layers (Layer::is_data_layer: Input, Data): their tops may become graph inputs
  Drop,        // metrics (Layer::label_scoring: Accuracy) and losses without an op mapping: no node;
               // consuming their tops is an error
  LossOutput,  // a loss with an op mapping (SoftmaxWithLoss): its output without the loss (a Softmax)
  Alias,       // the op mapping says no node (Split, Dropout): the tops are the bottom's value
  FoldedBN,    // BatchNorm folded into the following Scale
  Normal,
};

inline int canonical(int axis, int num_axes, const Layer& l, const char* what) {
  if (axis < -num_axes || axis >= num_axes) fail(l, std::string(what) + " " + std::to_string(axis) + " out of range");
  return axis < 0 ? axis + num_axes : axis;
}

// One version of a Caffe blob.
struct Ref {
  enum Type { Value, Input, Dropped } type = Value;
  std::string value;  // Value: the ONNX value name
  int input = -1;     // Input: index into Exporter::inputs_
  int layer = -1;     // Dropped: the producing layer
};

class Exporter {
 public:
  Exporter(const Net& net, const OnnxExportOptions& options) : net_(net), opt_(options), layers_(net.layers()) {}
  onnx::ModelProto run();

 private:
  // ---- the op mapping: which ONNX nodes a DSG layer type becomes ---------------------------------
  using Emit = void (Exporter::*)(int);
  struct OpMapping {
    Emit emit = nullptr;  // emits layer i's nodes (nullptr for an alias)
    bool alias = false;   // no node: the tops are the bottom's value (ONNX values may fan out)
  };
  static const std::map<std::string, OpMapping>& op_mappings();
  // The layer's op mapping, or nullptr when its type has none.
  static const OpMapping* op_mapping(const Layer& l);
  static bool emitted_by(const Layer& l, Emit emit);

  // ---- planning ---------------------------------------------------------------------------------
  void classify();
  // A BatchNorm directly followed by a channel-wise Scale of its top becomes one BatchNormalization.
  bool can_fold(int i) const;
  void check_shared() const;
  // Which Input / Data tops an exported layer consumes (through Split / Dropout), and whether they
  // share one axis-0 size that can become the symbolic batch "N".
  void decide_batch();

  // ---- names and graph building ----------------------------------------------------------------
  std::string fresh(const std::string& base);
  // The ONNX value for top j of layer i: the blob's own name for its last version, else a fresh one.
  std::string top_value(int i, int j);
  void define(const std::string& blob, const std::string& value);
  std::string resolve(int i, int j);
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in,
                        const std::vector<std::string>& out, const std::string& name);
  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v);
  static void attr(onnx::NodeProto* n, const std::string& name, const Dims& v);
  static void attr_f(onnx::NodeProto* n, const std::string& name, float v);
  onnx::TensorProto* initializer(const std::string& base, const Dims& dims, int type, std::string* name);
  std::string float_init(const std::string& base, const Dims& dims, const float* data);
  std::string float_init(const std::string& base, const Dims& dims, const std::vector<float>& data);
  std::string int64_init(const std::string& base, const Dims& values);
  // Parameter blob p of layer i as a value of shape `dims` (default: the blob's own shape): a float
  // initializer, or Gather(codebook, indices) for shared weights.
  std::string param_value(int i, int p, const std::string& suffix, Dims dims = {});
  // Reshape target for the top of layer i: the top's shape; under dynamic_batch axis 0 becomes 0
  // (copied from the bottom) or -1 (inferred) so that other batch sizes work. `axis0` is 'c' (top
  // axis 0 is the bottom's), 'i' (axis 0 absorbs the batch) or 'f' (fixed by the configuration).
  Dims reshape_target(int i, char axis0) const;

  // ---- layers: emit() dispatches through the op mapping to one emitter per layer kind -----------
  void emit(int i);
  // A data layer fed from a dataset (a BatchSource) documents the transform its input has had.
  std::string input_doc(const Layer& l) const;
  // apps/onnx_emit_gemm.cpp
  void convolution(int i);
  void inner_product(int i);
  // apps/onnx_emit_pooling.cpp
  void pooling(int i);
  // apps/onnx_emit_activation.cpp
  void relu(int i);
  void unary(int i, const char* op);
  void sigmoid(int i) { unary(i, "Sigmoid"); }
  void tan_h(int i) { unary(i, "Tanh"); }
  void softmax(int i);
  void softmax_node(int i, const std::string& x, const std::string& y, int axis_param);
  void softmax_loss(int i);
  // apps/onnx_emit_normalization.cpp
  void batch_norm_alone(int i) { batch_norm(i, -1); }
  // A Scale after a BatchNorm that folds into it emits both; otherwise a Mul (+ Add).
  void scale_or_folded_bn(int i);
  // BatchNorm layer bn, folded with Scale layer sc when sc >= 0.
  void batch_norm(int bn, int sc);
  void scale(int i);
  // apps/onnx_emit_shape.cpp
  void concat(int i);
  void eltwise(int i);
  void flatten(int i);
  void reshape(int i);

  // ---- graph interface and verification ------------------------------------------------------
  static void set_shape(onnx::ValueInfoProto* vi, const Dims& dims, int64_t symbolic_batch);
  void finish();
  // Every blob's ONNX shape must be the net's ("N" standing for the batch size).
  void verify_shapes(const std::string& what);

  struct PendingInput {
    std::string name;
    Dims shape;
    std::string doc;
    bool used = false;
    // normalize_inputs: the Data layer's transform, applied by nodes on first use (normalized).
    bool normalize = false;
    std::vector<float> mean;
    float scale = 1;
    std::string normalized;  // the value after Sub / Mul, once emitted
  };
  // The value an exported layer reads for graph input k: the input itself, or its normalization.
  std::string input_value(int k);

  const Net& net_;
  const OnnxExportOptions& opt_;
  const std::vector<std::unique_ptr<Layer>>& layers_;
  int max_opset_ = 0;
  onnx::ModelProto model_;
  onnx::GraphProto* graph_ = nullptr;
  std::vector<Kind> kinds_;
  std::map<std::string, int> last_writer_;
  std::set<std::string> reserved_, used_, node_names_;
  std::map<std::string, Ref> current_;
  std::vector<PendingInput> inputs_;
  std::map<std::string, Dims> value_shape_;  // ONNX values of blobs -> the net's shapes
  std::vector<std::string> produced_;
  std::set<std::string> consumed_;
  bool dynamic_ = false;
  int64_t batch_ = -1;
};

}  // namespace dsg::onnx_detail
