// InnerProduct (Caffe's fully connected layer). The bottom is viewed as a matrix X [M, K] with
// M = count(0, axis) and K = count(axis); the top is [shape[0..axis), num_output].
//   Y = X W^T + b        weight W [num_output, K]   (transpose: W is [K, num_output], Y = X W)
// Parameter diffs accumulate (+=); the bottom diff is overwritten.
//
// Structured sparsity (Layer::active_outputs / active_inputs, set by sparsity/structure.cpp; the
// transposed layout ignores them and runs dense): active_outputs are the computed neurons (rows of
// W; the GEMM's N shrinks and the other outputs are written as exact zeros), active_inputs the
// input features that can be non-zero (columns of W; the others are known zero, so the GEMM's K
// shrinks). The kept rows / columns of W and the kept columns of X are gathered into compact
// buffers every forward (X again in backward). Backward adds dW / db for the kept entries only
// (the other diff entries are left as they are) and writes dX for the kept features, 0 elsewhere.
// The device code (forward_cuda / backward_cuda, layers/dense_product.hpp) runs the dense and the
// structured products; synapse dropout, DSG and weight operators are CPU-only.
//
// Dynamic Sparse Graph (dsg_param, layers/dsg_select.hpp): PER_SAMPLE computes the kept outputs of
// each sample as dot products (the others are exact zeros, no bias) and backpropagates through
// them only; BATCH_SHARED selects the kept neurons once per pass and runs the structured path
// above with them as active_outputs.
//
// Synapse dropout (approx_dropout_param with pattern TILE or BERNOULLI and dropout_param's ratio
// p, TRAIN only): TILE multiplies only the kept tiles of W (layers/tile_drop.hpp), the tile
// pattern drawn per pass from the searched distribution (layers/ard_distribution.hpp) with the
// counter-based generator; BERNOULLI is the DropConnect baseline (a per-weight mask for the pass,
// dense GEMMs on the masked copy). Kept weights are scaled by 1/(1-p); TEST runs dense.
#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/device_array.hpp"
#include "runtime/layer.hpp"
#include "runtime/math.hpp"
#include "runtime/ops.hpp"
#include "layers/dense_product.hpp"
#include "layers/dsg_select.hpp"
#include "layers/tile_drop.hpp"
#include "runtime/rng.hpp"
#include "layers/ard_distribution.hpp"
#include "layers/structured.hpp"

namespace dsg {

class InnerProductLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "InnerProduct"; }
  std::vector<int> weight_blobs() const override { return {0}; }
  // Rows of W [num_output, K] are the output neurons (columns when transposed, which runs dense);
  // the inputs are the features along axis 1.
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kProducer;
    const bool rows = !param_.inner_product_param().transpose();
    f.rows_are_outputs = rows;
    f.unit_axis = axis_;
    f.inputs = rows && axis_ == 1 ? ChannelFlow::kFeatures : ChannelFlow::kNoInputs;
    return f;
  }
  // CUDA: the dense product and the structured modes (active outputs / inputs, untransposed); no
  // synapse dropout, DSG selection or weight operator.
  bool supports(DeviceType device, LayerMode mode) const override {
    if (mode == LayerMode::kActiveOutputs || mode == LayerMode::kActiveInputs)
      return !param_.inner_product_param().transpose();
    if (device != DeviceType::CPU) return mode == LayerMode::kDense;
    return mode == LayerMode::kDense || mode == LayerMode::kWeightOperator || mode == LayerMode::kDynamicSelection;
  }
  void set_num_outputs(LayerParameter& param, int outputs) const override {
    param.mutable_inner_product_param()->set_num_output(uint32_t(outputs));
  }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64& rng) override {
    const InnerProductParameter& p = param_.inner_product_param();
    if (!p.has_num_output() || p.num_output() == 0)
      throw Error(where() + "inner_product_param.num_output must be set and positive");
    n_ = static_cast<int>(p.num_output());
    bias_term_ = p.bias_term();
    transpose_ = p.transpose();
    const Tensor& x = *bottom[0];
    if (p.axis() < -x.num_axes() || p.axis() >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for bottom shape %s", p.axis(), x.shape_string().c_str()));
    axis_ = x.canonical_axis(p.axis());
    k_ = static_cast<int>(x.count(axis_));

    std::vector<int> wshape = transpose_ ? std::vector<int>{k_, n_} : std::vector<int>{n_, k_};
    if (!blobs_.empty()) {
      size_t expected = bias_term_ ? 2 : 1;
      if (blobs_.size() != expected || blobs_[0]->shape() != wshape ||
          (bias_term_ && blobs_[1]->shape() != std::vector<int>{n_}))
        throw Error(where() + "preset parameter blobs do not match num_output/bias_term/input size");
      setup_dsg();
      setup_synapse_drop();
      return;
    }
    setup_dsg();
    setup_synapse_drop();
    blobs_.push_back(std::make_shared<Tensor>(wshape));
    fill(p.weight_filler(), *blobs_[0], rng);
    if (bias_term_) {
      blobs_.push_back(std::make_shared<Tensor>(std::vector<int>{n_}));
      fill(p.bias_filler(), *blobs_[1], rng);
    }
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    if (axis_ >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for bottom shape %s", axis_, x.shape_string().c_str()));
    if (x.count(axis_) != k_)
      throw Error(where() + strfmt("input size %lld (bottom %s from axis %d) does not match the weights' %d",
                                   static_cast<long long>(x.count(axis_)), x.shape_string().c_str(), axis_, k_));
    m_ = static_cast<int>(x.count(0, axis_));
    std::vector<int> shape(x.shape().begin(), x.shape().begin() + axis_);
    shape.push_back(n_);
    top[0]->reshape(shape);
    configure_structure();
  }

  bool set_weight_operator(std::shared_ptr<const WeightOperator> op) override {
    if (op && (op->rows() != n_ || op->cols() != k_))
      throw Error(where() + strfmt("weight operator is %lldx%lld, the weights are %dx%d",
                                   static_cast<long long>(op->rows()), static_cast<long long>(op->cols()), n_, k_));
    if (op && (transpose_ || dsg_.configured() || synapse_ != SynapseDrop::NONE)) return false;
    weight_operator_ = std::move(op);
    return true;
  }

  const std::vector<uint8_t>* dynamic_output_mask() const override { return dsg_on_ ? &mask_ : nullptr; }
  bool double_mask_output() const override { return dsg_.configured() && dsg_.double_mask(); }

  LayerMacs macs() const override {
    LayerMacs c;
    const double dense = double(m_) * n_ * k_;
    c.dense_forward = dense;
    c.dense_backward = 2 * dense;
    double done = dense;
    if (synapse_on_ && synapse_ == SynapseDrop::TILE) done = double(m_) * double(tiles_->kept_weights());
    else if (dsg_on_ && dsg_.per_sample()) done = double(m_) * dsg_.keep() * k_;
    else if (sparse_) done = double(m_) * nk_ * kk_;
    c.forward = done;
    c.backward = 2 * done;
    c.search = dsg_on_ ? dsg_.search_ops() : 0;
    return c;
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    if (weight_operator_) return forward_operator(*bottom[0], *top[0]);
    synapse_on_ = synapse_ != SynapseDrop::NONE && ctx.phase == TRAIN && drop_ratio_ > 0;
    if (synapse_on_) return forward_synapse_drop(*bottom[0], *top[0], ctx);
    dsg_on_ = dsg_.active(ctx.phase);
    if (dsg_on_ && dsg_.per_sample()) return forward_dsg_rows(*bottom[0], *top[0]);
    if (dsg_on_) select_shared(*bottom[0]);
    else if (dsg_.configured() && !active_outputs().empty()) set_active_outputs({}), configure_structure();
    if (sparse_) return forward_structured(*bottom[0], *top[0]);
    const float* x = bottom[0]->data();
    const float* w = blobs_[0]->data();
    float* y = top[0]->mutable_data();
    float beta = 0.0f;
    if (bias_term_) {
      const float* b = blobs_[1]->data();
      for (int i = 0; i < m_; ++i) std::copy(b, b + n_, y + int64_t(i) * n_);
      beta = 1.0f;
    }
    gemm(false, !transpose_, m_, n_, k_, 1.0f, x, w, beta, y);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (weight_operator_) throw Error(where() + "runs through a weight operator (inference only); no backward");
    if (synapse_on_) return backward_synapse_drop(*top[0], propagate_down[0], *bottom[0]);
    if (dsg_on_ && dsg_.per_sample()) return backward_dsg_rows(*top[0], propagate_down[0], *bottom[0]);
    if (sparse_) return backward_structured(*top[0], propagate_down[0], *bottom[0]);
    const float* dy = top[0]->diff();
    const float* x = bottom[0]->data();
    if (param_propagate_down(0)) {
      float* dw = blobs_[0]->mutable_diff();
      if (transpose_)
        gemm(true, false, k_, n_, m_, 1.0f, x, dy, 1.0f, dw);  // dW [K,N] += X^T dY
      else
        gemm(true, false, n_, k_, m_, 1.0f, dy, x, 1.0f, dw);  // dW [N,K] += dY^T X
    }
    if (bias_term_ && param_propagate_down(1)) {
      if (int(ones_.size()) < m_) ones_.assign(m_, 1.0f);
      gemv(true, m_, n_, 1.0f, dy, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
    }
    if (propagate_down[0]) {
      // dX [M,K] = dY [M,N] W [N,K]  (transpose: dY W^T with W [K,N])
      gemm(false, transpose_, m_, k_, n_, 1.0f, dy, blobs_[0]->data(), 0.0f, bottom[0]->mutable_diff());
    }
  }

  // Device code: the dense product, or the structured one (layers/dense_product.hpp) when
  // configure_structure() found kept outputs / inputs; the index lists move to the device once per
  // change of the structure.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    if (sparse_) {
      const StructuredProduct p = device_structure(d);
      structured_product_forward(ops_for(d), p, bottom[0]->data(d), blobs_[0]->data(d),
                                 bias_term_ ? blobs_[1]->data(d) : nullptr, device_scratch(d, p, false),
                                 top[0]->mutable_data(d));
      return;
    }
    dense_product_forward(ops_for(d), dense_shape(), bottom[0]->data(d), blobs_[0]->data(d),
                          bias_term_ ? blobs_[1]->data(d) : nullptr, top[0]->mutable_data(d));
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    const Device& d = ctx.device;
    if (sparse_) {
      const StructuredProduct p = device_structure(d);
      const bool need_w = param_propagate_down(0);
      structured_product_backward(ops_for(d), p, bottom[0]->data(d), blobs_[0]->data(d), top[0]->diff(d),
                                  device_scratch(d, p, need_w), need_w ? blobs_[0]->mutable_diff(d) : nullptr,
                                  bias_term_ && param_propagate_down(1) ? blobs_[1]->mutable_diff(d) : nullptr,
                                  propagate_down[0] ? bottom[0]->mutable_diff(d) : nullptr);
      return;
    }
    dense_product_backward(ops_for(d), dense_shape(), bottom[0]->data(d), blobs_[0]->data(d), top[0]->diff(d),
                           param_propagate_down(0) ? blobs_[0]->mutable_diff(d) : nullptr,
                           bias_term_ && param_propagate_down(1) ? blobs_[1]->mutable_diff(d) : nullptr,
                           propagate_down[0] ? bottom[0]->mutable_diff(d) : nullptr);
  }

 private:
  DenseProduct dense_shape() const { return DenseProduct{m_, n_, k_, transpose_}; }

  // outs_ / ins_ and their inverse maps as device index lists (refreshed when the structure
  // changed), and the structured product's shape on device d.
  StructuredProduct device_structure(const Device& d) {
    auto refresh = [](const std::vector<int>& kept, int count, IndexList& list, IndexList& pos) {
      if (list.values() == kept) return;
      list.set(kept);
      std::vector<int> inverse;
      if (!kept.empty()) {
        inverse.assign(size_t(count), -1);
        for (size_t r = 0; r < kept.size(); ++r) inverse[size_t(kept[r])] = int(r);
      }
      pos.set(inverse);
    };
    refresh(outs_, n_, outs_list_, out_pos_list_);
    refresh(ins_, k_, ins_list_, in_pos_list_);
    StructuredProduct p;
    p.m = m_, p.n = n_, p.k = k_, p.nk = nk_, p.kk = kk_;
    if (!outs_.empty()) p.outs = outs_list_.on(d), p.out_pos = out_pos_list_.on(d);
    if (!ins_.empty()) p.ins = ins_list_.on(d), p.in_pos = in_pos_list_.on(d);
    p.row_stride = row_stride_;
    p.first_out = row_stride_ ? outs_[0] : 0;
    return p;
  }

  // Device scratch for the structured product (W' persists from forward to backward).
  StructuredScratch device_scratch(const Device& d, const StructuredProduct& p, bool need_dw) {
    StructuredScratch s;
    if (!p.row_stride) {
      dev_w_.resize(size_t(p.nk) * p.kk);
      s.w = dev_w_.mutable_on(d);
    }
    if (p.ins) {
      dev_x_.resize(size_t(p.m) * p.kk);
      s.x = dev_x_.mutable_on(d);
    }
    if (p.outs) {
      dev_y_.resize(size_t(p.m) * p.nk);
      s.y = dev_y_.mutable_on(d);
    }
    if (need_dw && !p.row_stride) {
      dev_dw_.resize(size_t(p.nk) * p.kk);
      s.dw = dev_dw_.mutable_on(d);
    }
    return s;
  }

  // Y [M,N] = X [M,K] W^T through the weight operator: C [N,M] = W [N,K] X^T [K,M], then Y = C^T + b.
  void forward_operator(const Tensor& bottom, Tensor& top) {
    const float* x = bottom.data();
    op_in_.resize(size_t(k_) * m_);
    op_out_.resize(size_t(n_) * m_);
    for (int i = 0; i < m_; ++i)
      for (int k = 0; k < k_; ++k) op_in_[size_t(k) * m_ + i] = x[int64_t(i) * k_ + k];
    weight_operator_->multiply(op_in_.data(), m_, op_out_.data());
    float* y = top.mutable_data();
    const float* b = bias_term_ ? blobs_[1]->data() : nullptr;
    for (int i = 0; i < m_; ++i)
      for (int j = 0; j < n_; ++j) y[int64_t(i) * n_ + j] = op_out_[size_t(j) * m_ + i] + (b ? b[j] : 0.0f);
  }

  void setup_synapse_drop() {
    if (!param_.has_approx_dropout_param()) return;
    const ApproxDropoutParameter& ap = param_.approx_dropout_param();
    if (ap.pattern() == ApproxDropoutParameter::ROW)
      throw Error(where() + "approx_dropout_param on an InnerProduct drops synapses: pattern TILE or BERNOULLI (ROW "
                            "patterns belong to an ApproxDropout layer after it)");
    if (transpose_ || param_.has_dsg_param())
      throw Error(where() + "synapse dropout needs the untransposed weight layout and no dsg_param");
    drop_ratio_ = param_.dropout_param().dropout_ratio();
    if (!(drop_ratio_ >= 0 && drop_ratio_ < 1))
      throw Error(where() + strfmt("dropout_param.dropout_ratio must be in [0, 1), got %g", drop_ratio_));
    if (ap.pattern() == ApproxDropoutParameter::BERNOULLI) {
      synapse_ = SynapseDrop::BERNOULLI;
      return;
    }
    synapse_ = SynapseDrop::TILE;
    grouped_ = ap.tile_kernel() == ApproxDropoutParameter::GROUPED;
    try {
      tiles_ = std::make_unique<TilePattern>(n_, k_, ap.tile_rows(), ap.tile_cols());
      tile_distribution_ = &row_pattern_distribution(drop_ratio_, tiles_->tiles(), ap.max_period(), ap.pair_weight());
    } catch (const Error& e) {
      throw Error(where() + e.what(), e.hint());
    }
  }

  void forward_synapse_drop(const Tensor& bottom, Tensor& top, const Context& ctx) {
    if (sparse_) throw Error(where() + "synapse dropout cannot be combined with structured sparsity on the same layer");
    const float scale = 1.0f / (1.0f - drop_ratio_);
    const float* b = bias_term_ ? blobs_[1]->data() : nullptr;
    const uint64_t stream = counter_stream(ctx.iteration, key());
    if (synapse_ == SynapseDrop::TILE) {
      const int period = tile_distribution_->sample_period(counter_uniform(ctx.seed, stream, 0));
      const int offset = std::min(period - 1, int(counter_uniform(ctx.seed, stream, 1) * float(period)));
      tiles_->set(period, offset);
      tiles_->forward(grouped_, bottom.data(), m_, blobs_[0]->data(), b, scale, top.mutable_data());
      return;
    }
    // BERNOULLI: W' = W * mask * scale for this pass, then the dense GEMM.
    const int64_t count = int64_t(n_) * k_;
    const float* w = blobs_[0]->data();
    masked_w_.resize(size_t(count));
    drop_mask_.resize(size_t(count));
    for (int64_t i = 0; i < count; i += 4) {
      float u[4];
      counter_uniform4(ctx.seed, stream, uint64_t(i / 4), u);
      for (int64_t j = i; j < std::min(count, i + 4); ++j) {
        const float keep = u[j - i] >= drop_ratio_ ? scale : 0.0f;
        drop_mask_[size_t(j)] = keep;
        masked_w_[size_t(j)] = w[j] * keep;
      }
    }
    float* y = top.mutable_data();
    float beta = 0.0f;
    if (b) {
      for (int i = 0; i < m_; ++i) std::copy(b, b + n_, y + int64_t(i) * n_);
      beta = 1.0f;
    }
    gemm(false, true, m_, n_, k_, 1.0f, bottom.data(), masked_w_.data(), beta, y);
  }

  void backward_synapse_drop(const Tensor& top, bool need_x, Tensor& bottom) {
    const float* dy = top.diff();
    const float scale = 1.0f / (1.0f - drop_ratio_);
    if (bias_term_ && param_propagate_down(1)) {
      if (int(ones_.size()) < m_) ones_.assign(m_, 1.0f);
      gemv(true, m_, n_, 1.0f, dy, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
    }
    float* dw = param_propagate_down(0) ? blobs_[0]->mutable_diff() : nullptr;
    float* dx = need_x ? bottom.mutable_diff() : nullptr;
    if (synapse_ == SynapseDrop::TILE) return tiles_->backward(grouped_, bottom.data(), m_, blobs_[0]->data(), dy, scale, dw, dx);
    if (dw) {
      dwc_.resize(size_t(n_) * k_);
      gemm(true, false, n_, k_, m_, 1.0f, dy, bottom.data(), 0.0f, dwc_.data());
      for (size_t i = 0; i < dwc_.size(); ++i) dw[i] += dwc_[i] * drop_mask_[i];
    }
    if (dx) gemm(false, false, m_, k_, n_, 1.0f, dy, masked_w_.data(), 0.0f, dx);
  }

  void setup_dsg() {
    if (!param_.has_dsg_param()) return;
    if (transpose_) throw Error(where() + "dsg_param needs the untransposed weight layout (transpose: false)");
    if (axis_ != 1) throw Error(where() + "dsg_param needs axis 1 (one row per sample)");
    dsg_.configure(param_, where(), n_, k_, key());
  }

  // DSG, PER_SAMPLE: the kept outputs of every sample, computed as dot products.
  void forward_dsg_rows(const Tensor& bottom, Tensor& top) {
    if (!active_inputs().empty() || !active_outputs().empty())
      throw Error(where() + "dsg_param PER_SAMPLE cannot be combined with structured sparsity on the same layer");
    const int keep = dsg_.keep();
    const float* x = bottom.data();
    const float* w = blobs_[0]->data();
    sel_.resize(size_t(m_) * keep);
    yc_.resize(size_t(m_) * keep);
    dsg_.project_weights(w);
    dsg_.select_rows(x, m_, k_, sel_.data());
    dsg_forward_rows(x, m_, k_, w, k_, sel_.data(), keep, yc_.data());
    float* y = top.mutable_data();
    const float* b = bias_term_ ? blobs_[1]->data() : nullptr;
    std::fill(y, y + int64_t(m_) * n_, 0.0f);
    mask_.assign(size_t(m_) * n_, 0);
    for (int i = 0; i < m_; ++i)
      for (int j = 0; j < keep; ++j) {
        const int64_t e = int64_t(i) * keep + j, o = int64_t(i) * n_ + sel_[size_t(e)];
        y[o] = yc_[size_t(e)] + (b ? b[sel_[size_t(e)]] : 0.0f);
        mask_[size_t(o)] = 1;
      }
  }

  void backward_dsg_rows(const Tensor& top, bool need_x, Tensor& bottom) {
    const int keep = dsg_.keep();
    const float* dy = top.diff();
    for (int64_t e = 0; e < int64_t(m_) * keep; ++e) yc_[size_t(e)] = dy[(e / keep) * n_ + sel_[size_t(e)]];
    dsg_backward_rows(bottom.data(), m_, k_, blobs_[0]->data(), n_, k_, sel_.data(), keep, yc_.data(),
                      need_x ? bottom.mutable_diff() : nullptr, k_,
                      param_propagate_down(0) ? blobs_[0]->mutable_diff() : nullptr,
                      bias_term_ && param_propagate_down(1) ? blobs_[1]->mutable_diff() : nullptr);
  }

  // DSG, BATCH_SHARED: the kept neurons of this pass become active_outputs (structured path).
  void select_shared(const Tensor& bottom) {
    dsg_.project_weights(blobs_[0]->data());
    dsg_.begin_batch();
    dsg_.add_rows(bottom.data(), m_, k_);
    std::vector<int> kept = dsg_.kept_outputs();
    mask_.assign(size_t(m_) * n_, 0);
    for (int i = 0; i < m_; ++i)
      for (int j : kept) mask_[size_t(i) * n_ + j] = 1;
    set_active_outputs(std::move(kept));
    configure_structure();
  }

  // Reads active_outputs() / active_inputs() into outs_ / ins_ (empty = all) and sizes the compact
  // buffers. Transposed weights always run dense.
  void configure_structure() {
    outs_.clear(), ins_.clear(), runs_.clear();
    if (!transpose_) {
      outs_ = checked_kept(active_outputs(), n_, where(), "active_outputs");
      ins_ = checked_kept(active_inputs(), k_, where(), "active_inputs");
    }
    sparse_ = !outs_.empty() || !ins_.empty();
    if (!sparse_) return;
    nk_ = outs_.empty() ? n_ : int(outs_.size());
    kk_ = ins_.empty() ? k_ : int(ins_.size());
    // Runs of consecutive kept features (a pruned channel of a flattened conv output removes a
    // whole H W run), so gathers copy blocks.
    if (ins_.empty()) {
      runs_.push_back({0, k_});
    } else {
      for (size_t i = 0; i < ins_.size(); ++i) {
        if (i > 0 && ins_[i] == ins_[i - 1] + 1) ++runs_.back().second;
        else runs_.push_back({ins_[i], 1});
      }
    }
    // Short runs (an interleaved pattern): copy element by element instead of memcpy per run.
    indexed_ = !ins_.empty() && int64_t(kk_) < 8 * int64_t(runs_.size());
    // Kept rows in an arithmetic progression with every input kept (approximate dropout's row
    // patterns): W' is a strided view of W (lda = stride * K), no gather or scatter of weights.
    row_stride_ = 0;
    if (ins_.empty() && outs_.size() >= 2) {
      row_stride_ = outs_[1] - outs_[0];
      for (size_t r = 2; r < outs_.size() && row_stride_; ++r)
        if (outs_[r] - outs_[r - 1] != row_stride_) row_stride_ = 0;
    }
    wc_.resize(row_stride_ ? 0 : size_t(nk_) * kk_);
    dwc_.resize(row_stride_ ? 0 : size_t(nk_) * kk_);
    xc_.resize(ins_.empty() ? 0 : size_t(m_) * kk_);
    yc_.resize(outs_.empty() ? 0 : size_t(m_) * nk_);
  }

  // dst[r, :] = the kept features of src row rows[r] (rows of src `ld` floats apart).
  void gather_rows(const float* src, int64_t ld, int rows, const int* row_index, float* dst) const {
    for (int r = 0; r < rows; ++r) {
      const float* s = src + (row_index ? row_index[r] : r) * ld;
      float* d = dst + int64_t(r) * kk_;
      if (indexed_) {
        for (int j = 0; j < kk_; ++j) d[j] = s[ins_[size_t(j)]];
        continue;
      }
      for (const auto& run : runs_) {
        std::memcpy(d, s + run.first, sizeof(float) * size_t(run.second));
        d += run.second;
      }
    }
  }

  // W' and its row stride: a strided view of W for row progressions, else the gathered copy.
  const float* kept_weights() const { return row_stride_ ? blobs_[0]->data() + int64_t(outs_[0]) * k_ : wc_.data(); }
  int kept_weights_ld() const { return row_stride_ ? row_stride_ * k_ : kk_; }

  void forward_structured(const Tensor& bottom, Tensor& top) {
    const int* rows = outs_.empty() ? nullptr : outs_.data();
    if (!row_stride_) gather_rows(blobs_[0]->data(), k_, nk_, rows, wc_.data());
    const float* x = bottom.data();
    if (!ins_.empty()) {
      gather_rows(x, k_, m_, nullptr, xc_.data());
      x = xc_.data();
    }
    const float* b = bias_term_ ? blobs_[1]->data() : nullptr;
    float* y = top.mutable_data();
    if (!rows) {
      float beta = 0.0f;
      if (b) {
        for (int i = 0; i < m_; ++i) std::copy(b, b + n_, y + int64_t(i) * n_);
        beta = 1.0f;
      }
      gemm(false, true, m_, n_, kk_, 1.0f, x, wc_.data(), beta, y);
      return;
    }
    gemm(false, true, m_, nk_, kk_, 1.0f, x, kk_, kept_weights(), kept_weights_ld(), 0.0f, yc_.data(), nk_);
    std::fill(y, y + int64_t(m_) * n_, 0.0f);
    for (int i = 0; i < m_; ++i) {
      const float* s = yc_.data() + int64_t(i) * nk_;
      float* d = y + int64_t(i) * n_;
      for (int r = 0; r < nk_; ++r) d[rows[r]] = s[r] + (b ? b[rows[r]] : 0.0f);
    }
  }

  // Uses W' (wc_ or the strided view) from the preceding forward (the weights do not change in between).
  void backward_structured(const Tensor& top, bool need_x, Tensor& bottom) {
    const float* dy = top.diff();
    if (!outs_.empty()) {  // dY' [M, N'] = the kept columns of dY
      float* d = yc_.data();
      for (int i = 0; i < m_; ++i)
        for (int r = 0; r < nk_; ++r) d[int64_t(i) * nk_ + r] = dy[int64_t(i) * n_ + outs_[size_t(r)]];
      dy = d;
    }
    const float* x = bottom.data();
    if (!ins_.empty()) {
      gather_rows(x, k_, m_, nullptr, xc_.data());
      x = xc_.data();
    }
    auto out_index = [&](int r) { return outs_.empty() ? r : outs_[size_t(r)]; };
    if (param_propagate_down(0) && row_stride_) {  // dW rows o, o+s, ... += dY'^T X in place
      gemm(true, false, nk_, k_, m_, 1.0f, dy, nk_, x, k_, 1.0f, blobs_[0]->mutable_diff() + int64_t(outs_[0]) * k_,
           row_stride_ * k_);
    } else if (param_propagate_down(0)) {
      gemm(true, false, nk_, kk_, m_, 1.0f, dy, x, 0.0f, dwc_.data());  // dW' [N', K'] = dY'^T X'
      float* dw = blobs_[0]->mutable_diff();
      for (int r = 0; r < nk_; ++r) {
        const float* s = dwc_.data() + int64_t(r) * kk_;
        float* d = dw + int64_t(out_index(r)) * k_;
        if (indexed_) {
          for (int j = 0; j < kk_; ++j) d[ins_[size_t(j)]] += s[j];
          continue;
        }
        for (const auto& run : runs_) {
          for (int j = 0; j < run.second; ++j) d[run.first + j] += s[j];
          s += run.second;
        }
      }
    }
    if (bias_term_ && param_propagate_down(1)) {
      float* db = blobs_[1]->mutable_diff();
      for (int i = 0; i < m_; ++i)
        for (int r = 0; r < nk_; ++r) db[out_index(r)] += dy[int64_t(i) * nk_ + r];
    }
    if (!need_x) return;
    float* dx = bottom.mutable_diff();
    if (ins_.empty()) {  // dX [M, K] = dY' W'
      gemm(false, false, m_, k_, nk_, 1.0f, dy, nk_, kept_weights(), kept_weights_ld(), 0.0f, dx, k_);
      return;
    }
    gemm(false, false, m_, kk_, nk_, 1.0f, dy, wc_.data(), 0.0f, xc_.data());
    std::fill(dx, dx + int64_t(m_) * k_, 0.0f);
    for (int i = 0; i < m_; ++i) {
      const float* s = xc_.data() + int64_t(i) * kk_;
      float* d = dx + int64_t(i) * k_;
      if (indexed_) {
        for (int j = 0; j < kk_; ++j) d[ins_[size_t(j)]] = s[j];
        continue;
      }
      for (const auto& run : runs_) {
        std::memcpy(d + run.first, s, sizeof(float) * size_t(run.second));
        s += run.second;
      }
    }
  }

  int axis_ = 1;
  int m_ = 0, n_ = 0, k_ = 0;
  bool bias_term_ = true;
  bool transpose_ = false;
  std::vector<float> ones_;

  // Structured sparsity, refreshed by reshape() before every forward.
  bool sparse_ = false;
  std::vector<int> outs_, ins_;               // computed neurons / kept input features; empty = all
  int nk_ = 0, kk_ = 0;                       // their counts (N', K')
  int row_stride_ = 0;                        // > 0: outs_ = outs_[0] + r * row_stride_, ins_ empty
  std::vector<std::pair<int, int>> runs_;     // kept features as (first, length) runs
  bool indexed_ = false;                      // runs too short for memcpy: index through ins_
  std::vector<float> wc_, dwc_, xc_, yc_;     // W' [N', K'] and its diff, X' / dX' [M, K'], Y' / dY' [M, N']
  std::vector<float> op_in_, op_out_;  // weight-operator transposes
  // The structured path's device state: outs_ / ins_ and their inverse maps, W', X', Y', dW'.
  IndexList outs_list_, out_pos_list_, ins_list_, in_pos_list_;
  DeviceArray<float> dev_w_, dev_x_, dev_y_, dev_dw_;

  // Synapse dropout (approx_dropout_param TILE / BERNOULLI).
  enum class SynapseDrop { NONE, TILE, BERNOULLI };
  SynapseDrop synapse_ = SynapseDrop::NONE;
  bool synapse_on_ = false;  // the last forward dropped synapses
  float drop_ratio_ = 0;
  bool grouped_ = true;
  std::unique_ptr<TilePattern> tiles_;
  const RowPatternDistribution* tile_distribution_ = nullptr;
  std::vector<float> masked_w_, drop_mask_;  // BERNOULLI: W' and the scaled mask of the pass

  // Dynamic Sparse Graph (dsg_param).
  DsgSelector dsg_;
  bool dsg_on_ = false;         // the last forward selected its outputs
  std::vector<int> sel_;        // PER_SAMPLE: kept outputs per sample [M, keep]
  std::vector<uint8_t> mask_;   // the last forward's output mask [M, N]
};

DSG_REGISTER_LAYER("InnerProduct", InnerProductLayer);

}  // namespace dsg
