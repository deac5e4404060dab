// dsgeval's evaluation logic (compiled into the dsgeval executable only; apps/dsgeval.cpp is the
// command line around it). Evaluation in dsgeval_lib.cpp, renderings in dsgeval_report.cpp.
//
//   Evaluator      loads a .dsgmodel, builds its TEST net, loads the weights and the structured
//                  sparsity recorded by the snapshot's policies, and runs the test set: top-1 /
//                  top-5 accuracy from the scores that feed the Accuracy layer (or, without one,
//                  SoftmaxWithLoss), per-class accuracy, confusion matrix, mean loss, images/s.
//   layer_stats    per layer with parameters: counts, non-zeros, bytes dense / sparse, MACs dense
//                  / on non-zero weights, and the execution mode.
//   sensitivity    one-shot magnitude pruning of one prunable layer at a time (element granularity:
//                  every layer with weight blobs; filter: the GEMM layers), accuracy per level,
//                  weights restored after each level.
//   compressed     (.dsgz) the same evaluation with every compressed weight layer running the
//                  EIE-style kernel on the compressed form (compress/eie_operator.hpp); the dense
//                  weight blobs are poisoned with NaN meanwhile, so nothing can fall back to them.
//   cost           MACs, memory references and energy per layer, dense vs compressed
//                  (compress/cost_model.hpp); a .dsgmodel is costed as dsgcompress would store it.
//   *_report       Markdown (stdout), JSON, CSV and SVG renderings of the results.
// Every failure is a dsg::Error naming the file or layer involved.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "compress/cost_model.hpp"
#include "compress/dsgz.hpp"
#include "dsg.pb.h"
#include "runtime/net.hpp"

namespace dsg {

class DataLayer;

namespace eval {

// Sparse storage estimate, stated in every report: a CSR-like layout with a 4-byte value and a
// 1-byte relative index per non-zero parameter.
constexpr int64_t kSparseBytesPerNonZero = 5;
extern const char* const kSparseBytesFormula;

struct EvalResult {
  int64_t samples = 0;        // labelled positions evaluated (ignored labels excluded)
  int64_t nonfinite_samples = 0;  // of those, with a NaN or infinite score (counted as wrong)
  int64_t batches = 0;
  int64_t batch_size = 0;
  int64_t dataset_size = 0;   // samples in the test set
  std::string source;         // description of the test data
  int classes = 0;
  int top_k = 5;              // min(5, classes)
  double top1 = 0, topk = 0;  // fractions in [0, 1]
  bool has_loss = false;
  double loss = 0;            // mean over batches of the net's weighted loss
  double seconds = 0;         // wall time of the forward passes
  double images_per_sec = 0;
  // Multiply-accumulates of the Convolution / InnerProduct layers per sample, as run (dynamic
  // selection such as DSG's, its search included) and dense (runtime/net_cost.hpp).
  double macs_per_sample = 0, dense_macs_per_sample = 0;
  std::vector<int64_t> class_samples, class_correct;  // per true class
  std::vector<std::vector<int64_t>> confusion;        // [true][predicted (arg max)]
};

struct LayerStats {
  std::string name, type, shape;   // shape of the weight blob(s), "+"-joined (LSTM: W_xc+W_hc)
  int64_t params = 0;              // all blobs
  int64_t nonzero_params = 0;
  int64_t weights = 0;             // the weight blobs (Layer::weight_blobs())
  int64_t nonzero_weights = 0;
  int64_t dense_bytes = 0;         // params * 4
  int64_t sparse_bytes = 0;        // nonzero_params * kSparseBytesPerNonZero
  bool has_macs = false;           // Convolution / InnerProduct
  int64_t dense_macs = 0;          // per sample
  int64_t sparse_macs = 0;         // per sample, MACs that touch non-zero weights
  std::string mode;                // "dense" or "structured: kept/total filters"
  std::string compressed_mode;     // .dsgz: the kernel of the compressed run ("eie-codebook", "dense")
  double sparsity() const { return weights ? 1.0 - double(nonzero_weights) / double(weights) : 0.0; }
};

// The sum over layers (name "total"; shape, type and mode empty).
LayerStats totals(const std::vector<LayerStats>& layers);

enum class Granularity { Element, Filter };
const char* granularity_name(Granularity g);  // "element" / "filter"

struct SensitivityResult {
  Granularity granularity = Granularity::Element;
  double base_accuracy = 0;        // top-1 of the unpruned model on the same batches
  double max_loss_points = 0.5;    // accepted drop in percentage points
  std::vector<double> levels;      // sparsities tested
  std::vector<std::string> layers; // prunable layers, net order
  // Per layer: whether the sparsity controller leaves it dense unless force: true (the net's first
  // convolution), so a suggested sparsity_param must say force: true.
  std::vector<bool> needs_force;
  std::vector<std::vector<double>> accuracy;  // [layer][level], fractions
  // Per layer: index into levels of the largest level whose drop <= max_loss_points, or -1.
  std::vector<int> suggested;
};

struct SensitivityProgress {
  int layer_index, layer_count;
  const std::string* layer;
  double level;
  double accuracy;
};

class Evaluator {
 public:
  // Reads `model_path`, resolves the Data layers' sources against the current directory (or
  // `data_dir` when non-empty), builds the TEST net and loads the weights and policy structure.
  Evaluator(const std::string& model_path, const std::string& data_dir);
  ~Evaluator();

  // Runs `batches` batches from the start of the test set (0 = the whole set; more than the set
  // holds is capped). Fills every field of EvalResult.
  EvalResult evaluate(int64_t batches);
  // Per layer with parameters, in net order. Call after evaluate() (needs the top shapes).
  std::vector<LayerStats> layer_stats() const;
  // Prunes each prunable layer (Layer::weight_blobs(); for Filter granularity only layers whose
  // weights are produced GEMM rows: Convolution, InnerProduct) alone at each level, evaluates top-1 over
  // `batches` batches and restores the weights. `progress` (may be empty) is called per level.
  SensitivityResult sensitivity(Granularity granularity, const std::vector<double>& levels, double max_loss_points,
                                int64_t batches, const std::function<void(const SensitivityProgress&)>& progress);

  // .dsgz only: evaluates with the compressed-form kernels installed (then removes them). Throws
  // for a .dsgmodel.
  EvalResult evaluate_compressed(int64_t batches);
  // Per Convolution / InnerProduct layer: dense vs compressed cost per sample (a .dsgmodel is
  // compressed in memory first). Call after evaluate().
  std::vector<compress::LayerCost> cost(int64_t sram_bytes) const;

  bool is_compressed() const { return compressed_; }
  const compress::DsgzModel& dsgz() const { return dsgz_; }
  const ModelFile& model() const { return model_; }
  Net& net() { return *net_; }
  // The device the evaluation runs on (ctx.device, ctx.device_code_on_host); the CPU by default.
  void set_context(const Context& ctx) { device_ = ctx.device, device_code_on_host_ = ctx.device_code_on_host; }

 private:
  EvalResult run(int64_t batches);

  ModelFile model_;
  bool compressed_ = false;
  compress::DsgzModel dsgz_;             // .dsgz: the compressed blobs
  std::map<std::string, std::string> compressed_modes_;  // layer -> kernel of the compressed run
  std::unique_ptr<Net> net_;
  std::vector<DataLayer*> data_;
  std::string scores_, labels_;  // blob names
  int axis_ = 1;
  bool has_ignore_ = false;
  int ignore_label_ = 0;
  Device device_;
  bool device_code_on_host_ = false;
};

// Prunes a layer's weight blobs (Layer::weight_blobs()) in place by magnitude: Element zeroes the
// round(sparsity * n) smallest |w|; Filter (Convolution, InnerProduct) zeroes the
// round(sparsity * outputs) output filters / neurons with the smallest L2 norm, and their biases
// (at least one filter is kept).
void prune_layer(Layer& layer, Granularity granularity, double sparsity);

// Renderings. `model_path` is echoed in the headers; `sens` may be null.
// What a .dsgz evaluation adds: the compressed-kernel run and the cost section.
struct CompressedSection {
  const EvalResult* compressed = nullptr;           // null for a .dsgmodel
  const std::vector<compress::LayerCost>* cost = nullptr;
  int64_t sram_bytes = 0;
};
std::string markdown_report(const std::string& model_path, const EvalResult& r, const std::vector<LayerStats>& layers,
                            const CompressedSection& extra = {});
std::string json_report(const std::string& model_path, const EvalResult& r, const std::vector<LayerStats>& layers,
                        const SensitivityResult* sens, const CompressedSection& extra = {});
// CSV with header layer,granularity,sparsity,accuracy,accuracy_drop (accuracy and drop are
// fractions: a drop of 0.005 is 0.5 percentage points).
std::string sensitivity_csv(const SensitivityResult& s);
// The suggestion block: one `layer "NAME": sparsity_param { ... }` line per layer (or a comment
// when no tested level stays within the accepted drop).
std::vector<std::string> suggestion_lines(const SensitivityResult& s);

}  // namespace eval
}  // namespace dsg
