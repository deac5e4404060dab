// dsgeval's evaluation, layer statistics and sensitivity analysis (see dsgeval_lib.hpp). The
// renderings (Markdown, JSON, CSV, SVG) are in dsgeval_report.cpp.
#include "apps/dsgeval_lib.hpp"
#include "runtime/net_cost.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "compress/eie_operator.hpp"
#include "compress/weight_blobs.hpp"
#include "datasets/data_layer.hpp"
#include "datasets/data_paths.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/model_file.hpp"
#include "sparsity/policy.hpp"
#include "sparsity/structure.hpp"

namespace dsg {
namespace eval {

const char* const kSparseBytesFormula =
    "sparse bytes = non-zero parameters x 5 (4-byte value + 1-byte relative index, a CSR-like estimate); "
    "dense bytes = parameters x 4";

const char* granularity_name(Granularity g) { return g == Granularity::Filter ? "filter" : "element"; }

namespace {

// Whether magnitude pruning at `granularity` applies to the layer: it has weight blobs
// (Layer::weight_blobs()), and for Filter granularity it computes its outputs with a weight GEMM
// (ChannelFlow::kProducer: Convolution, InnerProduct).
bool prunable(const Layer& layer, Granularity granularity) {
  if (layer.weight_blobs().empty() || layer.blobs().empty()) return false;
  return granularity == Granularity::Element || layer.channel_flow().kind == ChannelFlow::kProducer;
}

// A GEMM layer (Convolution, InnerProduct): its MACs are weights x output positions, and its
// outputs are the units along channel_flow().unit_axis of top 0.
bool gemm_layer(const Layer& layer) {
  return layer.channel_flow().kind == ChannelFlow::kProducer && !layer.weight_blobs().empty() && !layer.blobs().empty();
}

// A convolution (a weight GEMM over input channels), as the sparsity controller tells the first
// one, which it leaves dense unless sparsity_param has force: true.
bool is_convolution(const Layer& layer) {
  const ChannelFlow flow = layer.channel_flow();
  return flow.kind == ChannelFlow::kProducer && flow.inputs == ChannelFlow::kChannels;
}

int64_t count_nonzero(const Tensor& t) {
  const float* d = t.data();
  int64_t n = 0;
  for (int64_t i = 0; i < t.count(); ++i) n += d[i] != 0.0f;
  return n;
}

}  // namespace

void prune_layer(Layer& layer, Granularity granularity, double sparsity) {
  if (!prunable(layer, granularity))
    throw Error("layer '" + layer.name() + "' (" + layer.type() + ") cannot be pruned");
  // The same magnitude policy that training uses, fired once (FILTER also zeroes the biases of
  // pruned filters and always keeps at least one).
  SparsityParameter sp;
  sp.set_policy("magnitude");
  sp.set_target_sparsity(float(std::min(sparsity, 0.9999)));
  sp.set_granularity(granularity == Granularity::Element ? SparsityParameter::FINE : SparsityParameter::FILTER);
  if (granularity == Granularity::Filter && !layer.channel_flow().rows_are_outputs)
    throw Error("layer '" + layer.name() + "': filter sensitivity needs [num_output, K] weights, but the rows of this " +
                layer.type() + "'s weights are not its outputs (InnerProduct with transpose: true)");
  policy_registry().create("magnitude", sp, layer)->prune_to(float(sparsity));
}

Evaluator::Evaluator(const std::string& model_path, const std::string& data_dir) {
  if (compress::looks_like_dsgz(model_path)) {
    compressed_ = true;
    dsgz_ = compress::read_dsgz_file(model_path);
    model_ = compress::decode_model(dsgz_);
  } else {
    model_ = read_model_file(model_path);
  }
  if (!model_.has_net() || model_.net().layer_size() == 0)
    throw Error("'" + model_path + "' holds no network definition");
  NetParameter param = model_.net();
  // Snapshots store absolute sources; relative ones resolve against the current directory.
  resolve_data_sources(param, ".", data_dir);
  std::mt19937_64 rng(0);  // initial values are overwritten by the stored weights
  net_ = std::make_unique<Net>(param, TEST, rng);
  try {
    net_->params_from_proto(model_);
  } catch (const Error& e) {
    throw Error("'" + model_path + "': " + e.what(), e.hint());
  }

  // Structured sparsity recorded by the snapshot's policies: which output filters are computed.
  std::vector<std::unique_ptr<SparsityPolicy>> policies;
  for (const PolicyState& s : model_.policy()) {
    Layer* layer = net_->layer_by_name(s.layer());
    if (!layer || layer->blobs().empty()) continue;
    const SparsityParameter& sp = layer->param().sparsity_param();
    if (policy_registry().has(s.policy())) {
      policies.push_back(policy_registry().create(s.policy(), sp, *layer));
      policies.back()->load(s);
    } else if (sp.granularity() == SparsityParameter::FILTER && s.active() && s.mask_size() > 0) {
      // The policy is not built into this binary: derive the kept filters from the mask bits.
      layer->set_active_outputs(stored_kept_outputs(s, *layer));
    }
  }
  apply_structure(*net_, policies);

  for (auto& l : net_->layers())
    if (auto* d = dynamic_cast<DataLayer*>(l.get())) data_.push_back(d);
  if (data_.empty())
    throw Error("the TEST net of '" + model_path + "' has no Data layer, so there is no test set to evaluate");
  // The scores: what feeds the first metric layer judging scores against labels (Accuracy), else
  // the first such loss (SoftmaxWithLoss).
  for (const bool loss : {false, true}) {
    for (auto& l : net_->layers()) {
      const std::optional<LabelScoring> scoring = l->label_scoring();
      if (!scoring || (l->default_loss_weight(0) != 0.0f) != loss || l->param().bottom_size() < 2) continue;
      scores_ = l->param().bottom(0);
      labels_ = l->param().bottom(1);
      axis_ = scoring->axis;
      has_ignore_ = scoring->has_ignore_label;
      ignore_label_ = scoring->ignore_label;
      break;
    }
    if (!scores_.empty()) break;
  }
  if (scores_.empty())
    throw Error("the TEST net of '" + model_path + "' has no Accuracy or SoftmaxWithLoss layer to take the class scores from");
}

Evaluator::~Evaluator() = default;

EvalResult Evaluator::evaluate(int64_t batches) { return run(batches); }

EvalResult Evaluator::run(int64_t batches) {
  DataLayer& d0 = *data_.front();
  EvalResult r;
  r.dataset_size = d0.dataset_size();
  r.batch_size = d0.batch_size();
  r.source = d0.source().description();
  const int64_t full = r.dataset_size / r.batch_size;
  if (full == 0)
    throw Error(strfmt("the test set holds %lld samples, fewer than one batch of %lld", (long long)r.dataset_size,
                       (long long)r.batch_size),
                "lower batch_size of the TEST Data layer");
  r.batches = batches <= 0 || batches > full ? full : batches;
  for (auto& l : net_->layers()) {
    for (int t = 0; t < l->param().top_size(); ++t) r.has_loss = r.has_loss || l->loss_weight(t) != 0.0f;
  }
  for (auto* d : data_) d->seek(0);
  Context ctx;
  ctx.phase = TEST;
  ctx.device = device_;
  ctx.device_code_on_host = device_code_on_host_;
  double loss_sum = 0, macs_run = 0, macs_dense = 0;
  int64_t hits1 = 0, hitsk = 0;
  for (int64_t b = 0; b < r.batches; ++b) {
    ctx.iteration = b;
    auto start = std::chrono::steady_clock::now();
    loss_sum += net_->forward(ctx);
    r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const NetCost cost = measure_net_cost(*net_);
    macs_run += cost.inference_ops();
    macs_dense += cost.dense_forward_macs;
    const Tensor& x = net_->blob(scores_);
    const Tensor& labels = net_->blob(labels_);
    const int a = x.canonical_axis(axis_);
    const int64_t outer = x.count(0, a), C = x.shape(a), inner = x.count(a + 1);
    if (r.classes == 0) {
      r.classes = int(C);
      r.top_k = int(std::min<int64_t>(5, C));
      r.class_samples.assign(size_t(C), 0);
      r.class_correct.assign(size_t(C), 0);
      r.confusion.assign(size_t(C), std::vector<int64_t>(size_t(C), 0));
    }
    if (labels.count() != outer * inner)
      throw Error("scores '" + scores_ + "' " + x.shape_string() + " and labels '" + labels_ + "' " +
                  labels.shape_string() + " do not match");
    const float* s = x.data();
    const float* lab = labels.data();
    for (int64_t k = 0; k < outer * inner; ++k) {
      const float v = lab[k];
      if (has_ignore_ && v == float(ignore_label_)) continue;
      if (!(v >= 0.0f && v < float(C)))
        throw Error(strfmt("label %g is outside the %lld classes of the scores '%s'", v, (long long)C, scores_.c_str()));
      const int64_t target = int64_t(v), base = (k / inner) * C * inner + k % inner;
      const float true_score = s[base + target * inner];
      // As the Accuracy layer: a tie with the true class's score counts against it.
      // A non-finite score anywhere in the row makes the sample wrong (NaN compares false with
      // everything and would otherwise rank the true class first); such samples are counted.
      int64_t better = std::isfinite(true_score) ? -1 : r.top_k, pred = 0;
      bool finite_row = std::isfinite(true_score);
      for (int64_t c = 0; c < C; ++c) {
        const float sc = s[base + c * inner];
        if (!std::isfinite(sc)) {
          finite_row = false;
          better += r.top_k;
          continue;
        }
        better += sc >= true_score;
        if (sc > s[base + pred * inner] || !std::isfinite(s[base + pred * inner])) pred = c;
      }
      if (!finite_row) ++r.nonfinite_samples;
      ++r.samples;
      ++r.class_samples[size_t(target)];
      ++r.confusion[size_t(target)][size_t(pred)];
      if (better < 1) ++hits1, ++r.class_correct[size_t(target)];
      if (better < r.top_k) ++hitsk;
    }
  }
  if (r.samples > 0) {
    r.top1 = double(hits1) / double(r.samples);
    r.topk = double(hitsk) / double(r.samples);
  }
  r.loss = loss_sum / double(r.batches);
  r.images_per_sec = r.seconds > 0 ? double(r.batches * r.batch_size) / r.seconds : 0;
  if (r.batches > 0 && r.batch_size > 0) {
    r.macs_per_sample = macs_run / double(r.batches * r.batch_size);
    r.dense_macs_per_sample = macs_dense / double(r.batches * r.batch_size);
  }
  return r;
}

EvalResult Evaluator::evaluate_compressed(int64_t batches) {
  if (!compressed_) throw Error("the compressed-kernel evaluation needs a .dsgz model");
  std::vector<std::pair<Layer*, std::vector<float>>> installed;
  compressed_modes_.clear();
  auto uninstall = [&] {
    for (auto& [layer, saved] : installed) {
      layer->set_weight_operator(nullptr);
      std::copy(saved.begin(), saved.end(), layer->blobs()[0]->mutable_data());
    }
  };
  try {
    for (const auto& b : dsgz_.blobs) {
      Layer* layer = net_->layer_by_name(b.layer);
      if (!layer || b.index != 0 || b.kind == compress::BlobKind::RAW ||
          !layer->supports(DeviceType::CPU, LayerMode::kWeightOperator))
        continue;
      auto op = compress::make_compressed_operator(b);
      if (!layer->set_weight_operator(op)) continue;
      Tensor& w = *layer->blobs()[0];
      installed.emplace_back(layer, std::vector<float>(w.data(), w.data() + w.count()));
      std::fill(w.mutable_data(), w.mutable_data() + w.count(), std::nanf(""));
      compressed_modes_[b.layer] = op->name();
    }
    EvalResult r = run(batches);
    uninstall();
    return r;
  } catch (...) {
    uninstall();
    throw;
  }
}

std::vector<compress::LayerCost> Evaluator::cost(int64_t sram_bytes) const {
  // The compressed blobs: the file's, or what dsgcompress would write for a .dsgmodel.
  compress::DsgzModel stored;
  if (!compressed_) {
    compress::CompressResult c = compress::compress_model(model_);
    stored = compress::read_dsgz(c.bytes.data(), c.bytes.size());
  }
  const compress::DsgzModel& m = compressed_ ? dsgz_ : stored;
  std::vector<compress::LayerCost> out;
  for (const auto& l : net_->layers()) {
    if (!gemm_layer(*l) || l->param().top_size() == 0 || !net_->has_blob(l->param().top(0))) continue;
    const compress::CompressedBlob* b = nullptr;
    for (const auto& blob : m.blobs)
      if (blob.layer == l->name() && blob.index == 0) b = &blob;
    if (!b) continue;
    const Tensor& top = net_->blob(l->param().top(0));
    const int64_t n = top.shape(0), outputs = top.shape(l->channel_flow().unit_axis);
    compress::LayerCostInput in;
    in.name = l->name();
    in.weights = b->count();
    in.positions = top.count() / n / outputs;
    in.activations_out = top.count() / n;
    in.activations_in = net_->blob(l->param().bottom(0)).count() / n;
    switch (b->kind) {
      case compress::BlobKind::RAW:
        in.stored_values = b->count();
        in.nonzero_values = b->count();  // runs dense
        break;
      case compress::BlobKind::TERNARY:
        in.stored_values = b->count();
        in.nonzero_values = b->count() - std::count(b->codes.begin(), b->codes.end(), 0u);
        in.weight_bits = 2;
        break;
      case compress::BlobKind::CODEBOOK:
      case compress::BlobKind::SPARSE_F32:
        compress::for_each_stored(*b, [&](int64_t, size_t k) {
          const bool zero = b->kind == compress::BlobKind::CODEBOOK ? b->codebook[b->codes[k]] == 0.0f : b->values[k] == 0.0f;
          in.nonzero_values += !zero;
        });
        in.entries = int64_t(b->z.size());
        in.stored_values = in.entries * b->block;
        in.weight_bits = b->kind == compress::BlobKind::CODEBOOK ? b->weight_bits : 32;
        in.index_bits = b->index_bits;
        break;
    }
    out.push_back(compress::layer_cost(in, sram_bytes));
  }
  return out;
}

std::vector<LayerStats> Evaluator::layer_stats() const {
  std::vector<LayerStats> out;
  for (const auto& l : net_->layers()) {
    if (l->blobs().empty()) continue;
    LayerStats st;
    st.name = l->name();
    st.type = l->type();
    // The weight blobs a sparsity policy prunes (blob 0; an LSTM's W_xc and W_hc).
    for (int i : l->weight_blobs()) {
      const Tensor& w = *l->blobs()[size_t(i)];
      st.shape += (st.shape.empty() ? "" : "+") + w.shape_string();
      st.weights += w.count();
      st.nonzero_weights += count_nonzero(w);
    }
    for (const auto& b : l->blobs()) {
      st.params += b->count();
      st.nonzero_params += count_nonzero(*b);
    }
    st.dense_bytes = st.params * 4;
    st.sparse_bytes = st.nonzero_params * kSparseBytesPerNonZero;
    st.mode = "dense";
    if (gemm_layer(*l) && l->param().top_size() > 0 && net_->has_blob(l->param().top(0))) {
      const Tensor& top = net_->blob(l->param().top(0));
      const int unit_axis = l->channel_flow().unit_axis;
      if (top.num_axes() >= 2 && unit_axis < top.num_axes() && top.count() > 0) {
        const int64_t outputs = top.shape(unit_axis);
        // Output positions per sample: H' * W' for a convolution, 1 for an InnerProduct on [N, K].
        const int64_t positions = top.count() / top.shape(0) / outputs;
        st.has_macs = true;
        st.dense_macs = st.weights * positions;
        st.sparse_macs = st.nonzero_weights * positions;
        if (!l->active_outputs().empty())
          st.mode = strfmt("structured: %zu/%lld filters", l->active_outputs().size(), (long long)outputs);
      }
    }
    if (!l->active_inputs().empty()) st.mode += strfmt(", %zu inputs active", l->active_inputs().size());
    if (compressed_) {
      auto it = compressed_modes_.find(l->name());
      st.compressed_mode = it != compressed_modes_.end() ? it->second : "dense";
    }
    out.push_back(st);
  }
  return out;
}

LayerStats totals(const std::vector<LayerStats>& layers) {
  LayerStats t;
  t.name = "total";
  for (const auto& l : layers) {
    t.params += l.params;
    t.nonzero_params += l.nonzero_params;
    t.weights += l.weights;
    t.nonzero_weights += l.nonzero_weights;
    t.dense_bytes += l.dense_bytes;
    t.sparse_bytes += l.sparse_bytes;
    t.has_macs = t.has_macs || l.has_macs;
    t.dense_macs += l.dense_macs;
    t.sparse_macs += l.sparse_macs;
  }
  return t;
}

SensitivityResult Evaluator::sensitivity(Granularity granularity, const std::vector<double>& levels,
                                         double max_loss_points, int64_t batches,
                                         const std::function<void(const SensitivityProgress&)>& progress) {
  SensitivityResult s;
  s.granularity = granularity;
  s.levels = levels;
  s.max_loss_points = max_loss_points;
  s.base_accuracy = run(batches).top1;
  std::vector<Layer*> layers;
  bool convolution_seen = false;
  for (auto& l : net_->layers()) {
    const bool first_convolution = is_convolution(*l) && !convolution_seen;
    convolution_seen = convolution_seen || is_convolution(*l);
    if (!prunable(*l, granularity)) continue;
    layers.push_back(l.get());
    s.layers.push_back(l->name());
    s.needs_force.push_back(first_convolution);
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    Layer& layer = *layers[i];
    std::vector<std::vector<float>> saved;
    for (const auto& b : layer.blobs()) saved.emplace_back(b->data(), b->data() + b->count());
    s.accuracy.emplace_back();
    int best = -1;
    for (size_t j = 0; j < levels.size(); ++j) {
      prune_layer(layer, granularity, levels[j]);
      double acc = run(batches).top1;
      for (size_t k = 0; k < saved.size(); ++k)
        std::memcpy(layer.blobs()[k]->mutable_data(), saved[k].data(), sizeof(float) * saved[k].size());
      s.accuracy.back().push_back(acc);
      // A small epsilon keeps a drop of exactly max_loss (e.g. one sample) from failing on rounding.
      if ((s.base_accuracy - acc) * 100.0 <= max_loss_points + 1e-9 && (best < 0 || levels[j] > levels[size_t(best)]))
        best = int(j);
      if (progress) progress({int(i) + 1, int(layers.size()), &s.layers[i], levels[j], acc});
    }
    s.suggested.push_back(best);
  }
  return s;
}

}  // namespace eval
}  // namespace dsg
