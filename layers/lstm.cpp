// LSTM (Caffe's "LSTM" layer): one LSTM layer over a time-major batch of sequences.
//   bottom[0] x    [T, N, D]  inputs, T time steps of N independent streams
//   bottom[1] cont [T, N]     sequence continuation: 0 at the first step of a sequence (the stream's
//                             h and c are reset to zero before that step), 1 otherwise
//   top[0]    h    [T, N, H]  hidden states, H = recurrent_param.num_output
// Parameters, Caffe's blobs in Caffe's order: W_xc [4H, D] and W_hc [4H, H] (weight_filler),
// b_c [4H] (bias_filler). The 4H gate rows are ordered i (input), f (forget), o (output), g (cell):
//   [i f o g]~ = W_xc x_t + b_c + W_hc h'_{t-1}      h'_{t-1} = cont_t h_{t-1}
//   i, f, o = sigmoid(~), g = tanh(~)                c'_{t-1} = cont_t c_{t-1}
//   c_t = f c'_{t-1} + i g                           h_t = o tanh(c_t)
// The state before t = 0 is zero and every forward starts from it: unlike Caffe's RecurrentLayer,
// no hidden state is carried from one forward call to the next (cont at t = 0 is irrelevant).
// cont gets no gradient; parameter diffs accumulate (+=), the bottom diff is overwritten. Caffe's
// static input (a third bottom) and expose_hidden are not supported; debug_info is ignored.
//
// Forward: one GEMM projects all T N inputs at once (gates_ = X W_xc^T + b_c), then per step one
// GEMM adds h'_{t-1} W_hc^T to the step's N rows and forward_step() applies the gate math, writing
// the activations over the pre-activations. Backward (BPTT over all T steps): per step, from the
// last, gate_gradients_step() writes dG_t [N, 4H] (the gradient w.r.t. the gate pre-activations)
// into row block t of dgates_, and a GEMM gives dh'_{t-1} = dG_t W_hc. After the loop, all steps at
// once: dX = dG W_xc, dW_xc += dG^T X, db_c += column sums of dG and dW_hc += dG^T H' (H' = hprev_,
// whose block 0 is zero, so the GEMM skips step 0): one GEMM with K = (T-1) N instead of T small
// ones. gate_gradients_row() is the elementwise kernel of one stream's dG_t row.
//
// Device code (forward_cuda / backward_cuda): the same recurrence through ops_for(device) GEMMs and
// the bodies of layers/lstm_kernels.hpp; fixed point and the structurally sparse backward stay
// CPU-only.
//
// Structurally sparse backward (structured_backward_param, Zhu et al. 2018; switched per iteration
// by the schedule through set_sparse_backward): after dG_t is computed, only its kept columns (gate
// units, shared by the mini-batch: the keep_fraction with the largest L2 norms over the batch, or
// those above threshold) are gathered into dG'_t [N, n'], and every backward product of step t runs
// on it: dh'_{t-1} = dG'_t W_hc[idx], dx_t = dG'_t W_xc[idx], dW_xc[idx] += dG'_t^T x_t,
// dW_hc[idx] += dG'_t^T h'_{t-1}, db[idx] += column sums. The dropped columns count as zero; the
// elementwise cell-gradient carry dc stays exact.
//
// Fixed-point simulation (fixed_point_param, ESE): forward computes with rounded copies of W_xc,
// b_c and W_hc (each on its own symmetric weight_bits grid) and rounds every h_t to the
// Q1.(activation_bits-1) grid before it reaches the top and the next step. Backward is the
// straight-through estimator: the same rounded weights carry the data gradients, the weight
// gradients go to the float blobs, and the rounding of h counts as the identity.
//
// Sparsity policies prune W_xc and W_hc together (weight_blobs() = {0, 2}): row r of both is the
// row r of the [4H, D + H] matrix [W_xc | W_hc].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <cstring>
#include <vector>

#include "layers/fixed_point.hpp"
#include "layers/lstm_kernels.hpp"
#include "runtime/device_array.hpp"
#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/layer.hpp"
#include "runtime/math.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {
namespace {

constexpr int64_t kGrainElems = 1 << 14;  // hidden units of work per parallel_for chunk

// The gate nonlinearities (layers/lstm_kernels.hpp), shared with the device bodies.
using lstm::sigmoid_approx;
using lstm::tanh_approx;

// One stream's gate math for one step (H hidden units). a [4H]: the pre-activations [i f o g]~ on
// entry, the activations on exit. c_prev: c_{t-1} (read only when keep != 0; keep = cont_t, 0 at
// t = 0). Writes c_t, tanh(c_t) and h_t, and h_next = keep_next h_t when h_next is not null.
void cell_forward_row(int64_t H, float* __restrict a, const float* __restrict c_prev, float keep,
                      float* __restrict c, float* __restrict tanh_c, float* __restrict h,
                      float* __restrict h_next, float keep_next, float act_step) {
  for (int64_t j = 0; j < 3 * H; ++j) a[j] = sigmoid_approx(a[j]);
  for (int64_t j = 3 * H; j < 4 * H; ++j) a[j] = tanh_approx(a[j]);
  const float* ai = a;
  const float* af = a + H;
  const float* ao = a + 2 * H;
  const float* ag = a + 3 * H;
  if (keep != 0.0f) {
    for (int64_t j = 0; j < H; ++j) c[j] = af[j] * (keep * c_prev[j]) + ai[j] * ag[j];
  } else {
    for (int64_t j = 0; j < H; ++j) c[j] = ai[j] * ag[j];
  }
  for (int64_t j = 0; j < H; ++j) {
    tanh_c[j] = tanh_approx(c[j]);
    h[j] = ao[j] * tanh_c[j];
  }
  if (act_step > 0.0f)
    for (int64_t j = 0; j < H; ++j) h[j] = round_activation(h[j], act_step);
  if (h_next)
    for (int64_t j = 0; j < H; ++j) h_next[j] = keep_next * h[j];
}

// One stream's gate gradients for one step (H hidden units): dg [4H] = d/d[i f o g]~ from the
// activations a [4H], tanh(c_t), c_{t-1} (c_prev, scaled by keep = cont_t, 0 at t = 0), the top
// diff dy and the carries from step t + 1 (dh_in = dh'_t, dc_io = dc_{t+1} f_{t+1}, both scaled by
// keep_next = cont_{t+1}, 0 at the last step). Leaves dc_io = dc_t f_t.
void gate_gradients_row(int64_t H, const float* __restrict a, const float* __restrict tanh_c,
                        const float* __restrict c_prev, float keep, const float* __restrict dy,
                        const float* __restrict dh_in, float keep_next, float* __restrict dc_io,
                        float* __restrict dg) {
  const float* ai = a;
  const float* af = a + H;
  const float* ao = a + 2 * H;
  const float* ag = a + 3 * H;
  for (int64_t j = 0; j < H; ++j) {
    const float i = ai[j], f = af[j], o = ao[j], g = ag[j], tc = tanh_c[j];
    const float dh = dy[j] + keep_next * dh_in[j];
    const float dc = keep_next * dc_io[j] + dh * o * (1.0f - tc * tc);
    dg[j] = dc * g * i * (1.0f - i);
    dg[H + j] = dc * (keep * c_prev[j]) * f * (1.0f - f);
    dg[2 * H + j] = dh * tc * o * (1.0f - o);
    dg[3 * H + j] = dc * i * (1.0f - g * g);
    dc_io[j] = dc * f;
  }
}

}  // namespace

class LSTMLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "LSTM"; }
  int min_num_bottoms() const override { return 2; }
  int max_num_bottoms() const override { return 3; }  // 3 only to reject a static input clearly
  int exact_num_tops() const override { return 1; }
  bool allow_backward_to(int bottom_index) const override { return bottom_index == 0; }
  std::vector<int> weight_blobs() const override { return {0, 2}; }
  // CUDA: the dense recurrence (no fixed point, no structurally sparse backward).
  bool supports(DeviceType device, LayerMode mode) const override {
    if (device != DeviceType::CPU) return mode == LayerMode::kDense;
    return mode == LayerMode::kDense || mode == LayerMode::kFixedPoint || mode == LayerMode::kSparseBackward;
  }
  // Rows of W_xc and W_hc are the gates' pre-activations in Caffe's i, f, o, g order.
  std::vector<std::string> weight_row_blocks() const override { return {"i", "f", "o", "g"}; }
  std::string blob_name(int blob_index) const override {
    static const char* const names[] = {"W_x", "b", "W_h"};
    return blob_index >= 0 && blob_index < 3 ? names[blob_index] : Layer::blob_name(blob_index);
  }

  void set_sparse_backward(bool on) override { sparse_backward_ = on && param_.has_structured_backward_param(); }

  LayerMacs macs() const override {
    LayerMacs c;
    const double per_col = double(n_) * (double(d_) + h_);  // a gate column's MACs, per step and product
    c.dense_forward = double(t_) * 4 * h_ * per_col;
    c.dense_backward = 2 * c.dense_forward;
    c.forward = c.dense_forward;
    c.backward = last_sparse_ ? 2 * double(kept_columns_) * per_col : c.dense_backward;
    return c;
  }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64& rng) override {
    const RecurrentParameter& p = param_.recurrent_param();
    if (bottom.size() == 3)
      throw Error(where() + "a static input (third bottom) is not supported; give x [T, N, D] and cont [T, N]");
    if (p.expose_hidden())
      throw Error(where() + "recurrent_param.expose_hidden is not supported (every forward starts from a zero state)");
    if (p.num_output() == 0) throw Error(where() + "recurrent_param.num_output must be set and positive");
    h_ = static_cast<int>(p.num_output());
    const Tensor& x = *bottom[0];
    if (x.num_axes() != 3)
      throw Error(where() + "bottom 0 (x) must be [T, N, D] (3 axes), got shape " + x.shape_string());
    d_ = x.shape(2);
    if (d_ <= 0) throw Error(where() + "bottom 0 (x) has no input features, shape " + x.shape_string());

    if (param_.has_fixed_point_param()) validate_fixed_point(param_.fixed_point_param(), where());
    if (param_.has_structured_backward_param()) {
      const StructuredBackwardParameter& sp = param_.structured_backward_param();
      if (!(sp.keep_fraction() > 0 && sp.keep_fraction() <= 1) || sp.threshold() < 0)
        throw Error(where() + strfmt("structured_backward_param: keep_fraction must be in (0, 1] and threshold >= 0, "
                                     "got %g and %g", sp.keep_fraction(), sp.threshold()));
      sparse_backward_ = true;  // until a schedule says otherwise
    }
    const std::vector<int> wx{4 * h_, d_}, b{4 * h_}, wh{4 * h_, h_};
    if (!blobs_.empty()) {
      if (blobs_.size() != 3 || blobs_[0]->shape() != wx || blobs_[1]->shape() != b || blobs_[2]->shape() != wh)
        throw Error(where() + strfmt("preset parameter blobs must be W_xc [%d, %d], b_c [%d], W_hc [%d, %d]",
                                     4 * h_, d_, 4 * h_, 4 * h_, h_));
      return;
    }
    blobs_.push_back(std::make_shared<Tensor>(wx));
    fill(p.weight_filler(), *blobs_[0], rng);
    blobs_.push_back(std::make_shared<Tensor>(b));
    fill(p.bias_filler(), *blobs_[1], rng);
    blobs_.push_back(std::make_shared<Tensor>(wh));
    fill(p.weight_filler(), *blobs_[2], rng);
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    const Tensor& cont = *bottom[1];
    if (x.num_axes() != 3)
      throw Error(where() + "bottom 0 (x) must be [T, N, D] (3 axes), got shape " + x.shape_string());
    if (x.shape(2) != d_)
      throw Error(where() + strfmt("input size %d (bottom 0 %s) does not match the weights' %d", x.shape(2),
                                   x.shape_string().c_str(), d_));
    t_ = x.shape(0);
    n_ = x.shape(1);
    if (cont.shape() != std::vector<int>{t_, n_})
      throw Error(where() + strfmt("bottom 1 (cont) must be [T, N] = [%d, %d] to match x %s, got shape %s", t_, n_,
                                   x.shape_string().c_str(), cont.shape_string().c_str()));
    top[0]->reshape({t_, n_, h_});
    const size_t rows = size_t(t_) * size_t(n_);
    gates_.resize(rows * 4 * size_t(h_));
    dgates_.resize(rows * 4 * size_t(h_));
    cell_.resize(rows * size_t(h_));
    tanh_cell_.resize(rows * size_t(h_));
    hprev_.resize(rows * size_t(h_));
    dh_carry_.resize(size_t(n_) * size_t(h_));
    dc_carry_.resize(size_t(n_) * size_t(h_));
    if (ones_.size() < rows) ones_.assign(rows, 1.0f);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const int rows = t_ * n_, g4 = 4 * h_;
    if (rows == 0) return;
    const float* x = bottom[0]->data();
    const float* cont = bottom[1]->data();
    round_weights();
    const float* w_xc = weight(0);
    const float* b_c = weight(1);
    const float* w_hc = weight(2);
    float* h = top[0]->mutable_data();

    // Input projection of every step at once: gates_ [T N, 4H] = X W_xc^T + b_c.
    for (int r = 0; r < rows; ++r) std::memcpy(gates_.data() + int64_t(r) * g4, b_c, sizeof(float) * size_t(g4));
    gemm(false, true, rows, g4, d_, 1.0f, x, w_xc, 1.0f, gates_.data());
    std::fill(hprev_.begin(), hprev_.begin() + int64_t(n_) * h_, 0.0f);  // h'_{-1} = 0

    for (int t = 0; t < t_; ++t) {
      const int64_t off = int64_t(t) * n_;
      // Recurrent part: gates_t += h'_{t-1} W_hc^T, skipped when every stream (re)starts here.
      if (t > 0 && std::any_of(cont + off, cont + off + n_, [](float c) { return c != 0.0f; }))
        gemm(false, true, n_, g4, h_, 1.0f, hprev_.data() + off * h_, w_hc, 1.0f, gates_.data() + off * g4);
      forward_step(t, cont, h);
    }
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    const bool need_x = propagate_down[0];
    const bool need_wx = param_propagate_down(0), need_b = param_propagate_down(1), need_wh = param_propagate_down(2);
    const int rows = t_ * n_, g4 = 4 * h_;
    if (rows == 0 || !(need_x || need_wx || need_b || need_wh)) return;
    last_sparse_ = sparse_backward_;
    if (sparse_backward_) return backward_sparse(top, need_x, bottom);
    const float* cont = bottom[1]->data();
    const float* dy = top[0]->diff();
    const float* w_hc = weight(2);

    // BPTT: dG_t per step, carrying dh'_{t-1} (a GEMM) and dc_t f_t (elementwise) to step t - 1.
    std::fill(dh_carry_.begin(), dh_carry_.end(), 0.0f);
    std::fill(dc_carry_.begin(), dc_carry_.end(), 0.0f);
    for (int t = t_ - 1; t >= 0; --t) {
      gate_gradients_step(t, cont, dy);
      if (t > 0)  // dh'_{t-1} [N, H] = dG_t [N, 4H] W_hc [4H, H]
        gemm(false, false, n_, h_, g4, 1.0f, dgates_.data() + int64_t(t) * n_ * g4, w_hc, 0.0f, dh_carry_.data());
    }

    // The input side of every step at once.
    const float* dg = dgates_.data();
    if (need_x)  // dX [T N, D] = dG W_xc
      gemm(false, false, rows, d_, g4, 1.0f, dg, weight(0), 0.0f, bottom[0]->mutable_diff());
    if (need_wx)  // dW_xc [4H, D] += dG^T X
      gemm(true, false, g4, d_, rows, 1.0f, dg, bottom[0]->data(), 1.0f, blobs_[0]->mutable_diff());
    if (need_b)  // db_c [4H] += column sums of dG
      gemv(true, rows, g4, 1.0f, dg, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
    if (need_wh && t_ > 1)  // dW_hc [4H, H] += sum_{t >= 1} dG_t^T h'_{t-1}
      gemm(true, false, g4, h_, rows - n_, 1.0f, dg + int64_t(n_) * g4, hprev_.data() + int64_t(n_) * h_, 1.0f,
           blobs_[2]->mutable_diff());
  }

  // Device code: the CPU path's recurrence through ops_for(ctx.device) GEMMs and the bodies of
  // layers/lstm_kernels.hpp, state in device arrays. One difference in the work done, not in the
  // values: the recurrent GEMM of a step runs even when every stream restarts there (h'_{t-1} is
  // then exactly zero), since checking cont would read device memory on the host.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const int rows = t_ * n_, g4 = 4 * h_;
    if (rows == 0) return;
    const DeviceOps& ops = ops_for(d);
    const int64_t nh = int64_t(n_) * h_;
    dev_gates_.resize(size_t(rows) * g4);
    dev_cell_.resize(size_t(rows) * h_);
    dev_tanh_cell_.resize(size_t(rows) * h_);
    dev_hprev_.resize(size_t(rows) * h_);
    const float* x = bottom[0]->data(d);
    const float* cont = bottom[1]->data(d);
    const float* w_hc = blobs_[2]->data(d);
    float* gates = dev_gates_.mutable_on(d);
    float* cell = dev_cell_.mutable_on(d);
    float* tanh_cell = dev_tanh_cell_.mutable_on(d);
    float* hprev = dev_hprev_.mutable_on(d);
    float* h = top[0]->mutable_data(d);

    // gates [T N, 4H] = X W_xc^T + b_c; h'_{-1} = 0.
    ops.broadcast_rows(rows, g4, blobs_[1]->data(d), gates);
    ops.gemm(false, true, rows, g4, d_, 1.0f, x, d_, blobs_[0]->data(d), d_, 1.0f, gates, g4);
    ops.fill(nh, 0.0f, hprev);
    for (int t = 0; t < t_; ++t) {
      const int64_t off = int64_t(t) * n_;
      if (t > 0) ops.gemm(false, true, n_, g4, h_, 1.0f, hprev + off * h_, h_, w_hc, h_, 1.0f, gates + off * g4, g4);
      const bool has_prev = t > 0, has_next = t + 1 < t_;
      launch(d, nh,
             LstmCellForward{h_, gates + off * g4, has_prev ? cell + (off - n_) * h_ : nullptr,
                             has_prev ? cont + off : nullptr, cell + off * h_, tanh_cell + off * h_, h + off * h_,
                             has_next ? hprev + (off + n_) * h_ : nullptr, has_next ? cont + off + n_ : nullptr});
    }
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    const Device& d = ctx.device;
    const bool need_x = propagate_down[0];
    const bool need_wx = param_propagate_down(0), need_b = param_propagate_down(1), need_wh = param_propagate_down(2);
    const int rows = t_ * n_, g4 = 4 * h_;
    if (rows == 0 || !(need_x || need_wx || need_b || need_wh)) return;
    last_sparse_ = false;
    const DeviceOps& ops = ops_for(d);
    const int64_t nh = int64_t(n_) * h_;
    dev_dgates_.resize(size_t(rows) * g4);
    dev_dh_carry_.resize(size_t(nh));
    dev_dc_carry_.resize(size_t(nh));
    const float* cont = bottom[1]->data(d);
    const float* dy = top[0]->diff(d);
    const float* w_hc = blobs_[2]->data(d);
    const float* gates = dev_gates_.on(d);
    const float* cell = dev_cell_.on(d);
    const float* tanh_cell = dev_tanh_cell_.on(d);
    float* dg = dev_dgates_.mutable_on(d);
    float* dh_carry = dev_dh_carry_.mutable_on(d);
    float* dc_carry = dev_dc_carry_.mutable_on(d);

    // BPTT: dG_t per step, carrying dh'_{t-1} (a GEMM) and dc_t f_t (elementwise) to step t - 1.
    ops.fill(nh, 0.0f, dh_carry);
    ops.fill(nh, 0.0f, dc_carry);
    for (int t = t_ - 1; t >= 0; --t) {
      const int64_t off = int64_t(t) * n_;
      const bool has_prev = t > 0, has_next = t + 1 < t_;
      launch(d, nh,
             LstmGateGradients{h_, gates + off * g4, tanh_cell + off * h_, has_prev ? cell + (off - n_) * h_ : nullptr,
                               has_prev ? cont + off : nullptr, dy + off * h_, dh_carry,
                               has_next ? cont + off + n_ : nullptr, dc_carry, dg + off * g4});
      if (t > 0)  // dh'_{t-1} [N, H] = dG_t [N, 4H] W_hc [4H, H]
        ops.gemm(false, false, n_, h_, g4, 1.0f, dg + off * g4, g4, w_hc, h_, 0.0f, dh_carry, h_);
    }

    // The input side of every step at once.
    if (need_x)  // dX [T N, D] = dG W_xc
      ops.gemm(false, false, rows, d_, g4, 1.0f, dg, g4, blobs_[0]->data(d), d_, 0.0f, bottom[0]->mutable_diff(d), d_);
    if (need_wx)  // dW_xc [4H, D] += dG^T X
      ops.gemm(true, false, g4, d_, rows, 1.0f, dg, g4, bottom[0]->data(d), d_, 1.0f, blobs_[0]->mutable_diff(d), d_);
    if (need_b)  // db_c [4H] += column sums of dG
      ops.column_sums(rows, g4, dg, blobs_[1]->mutable_diff(d));
    if (need_wh && t_ > 1)  // dW_hc [4H, H] += sum_{t >= 1} dG_t^T h'_{t-1}
      ops.gemm(true, false, g4, h_, rows - n_, 1.0f, dg + int64_t(n_) * g4, g4, dev_hprev_.on(d) + nh, h_, 1.0f,
               blobs_[2]->mutable_diff(d), h_);
  }

 private:
  // Parameter blob i as forward uses it: the rounded copy under fixed_point_param (weight_bits > 0),
  // the blob otherwise.
  const float* weight(int i) const {
    return rounded_[size_t(i)].empty() ? blobs_[size_t(i)]->data() : rounded_[size_t(i)].data();
  }

  // Refreshes the rounded copies of the parameters from the float blobs (every forward).
  void round_weights() {
    const bool on = param_.has_fixed_point_param();
    const int bits = on ? int(param_.fixed_point_param().weight_bits()) : 0;
    act_step_ = on ? activation_step(int(param_.fixed_point_param().activation_bits())) : 0.0f;
    for (size_t i = 0; i < 3; ++i) {
      if (bits == 0) {
        rounded_[i].clear();
        continue;
      }
      const Tensor& b = *blobs_[i];
      rounded_[i].resize(size_t(b.count()));
      round_to_step(b.data(), b.count(), weight_grid_step(b.data(), b.count(), bits), rounded_[i].data());
    }
  }

  // The kept gate-gradient columns of step t (row block t of dgates_), ascending, into idx.
  void select_columns(int t, std::vector<int>& idx) {
    const int g4 = 4 * h_;
    const StructuredBackwardParameter& sp = param_.structured_backward_param();
    norm_.assign(size_t(g4), 0.0f);
    const float* dg = dgates_.data() + int64_t(t) * n_ * g4;
    for (int n = 0; n < n_; ++n)
      for (int j = 0; j < g4; ++j) norm_[size_t(j)] += dg[int64_t(n) * g4 + j] * dg[int64_t(n) * g4 + j];
    idx.clear();
    if (sp.threshold() > 0) {
      const float tau = sp.threshold() * sp.threshold();
      for (int j = 0; j < g4; ++j)
        if (norm_[size_t(j)] >= tau) idx.push_back(j);
      if (idx.empty()) idx.push_back(int(std::max_element(norm_.begin(), norm_.end()) - norm_.begin()));
      return;
    }
    const int keep = std::clamp(int(std::lround(double(sp.keep_fraction()) * g4)), 1, g4);
    sorted_ = norm_;
    std::nth_element(sorted_.begin(), sorted_.begin() + (keep - 1), sorted_.end(), std::greater<float>());
    const float kth = sorted_[size_t(keep - 1)];
    int above = 0;
    for (int j = 0; j < g4; ++j) above += norm_[size_t(j)] > kth;
    int ties = keep - above;
    for (int j = 0; j < g4; ++j)
      if (norm_[size_t(j)] > kth || (norm_[size_t(j)] == kth && ties-- > 0)) idx.push_back(j);
  }

  // BPTT with the structurally sparse gate gradients (see the header comment).
  void backward_sparse(const TensorVec& top, bool need_x, const TensorVec& bottom) {
    const bool need_wx = param_propagate_down(0), need_b = param_propagate_down(1), need_wh = param_propagate_down(2);
    const int g4 = 4 * h_;
    const float* cont = bottom[1]->data();
    const float* dy = top[0]->diff();
    const float* x = bottom[0]->data();
    const float* w_xc = weight(0);
    const float* w_hc = weight(2);
    float* dx = need_x ? bottom[0]->mutable_diff() : nullptr;
    std::fill(dh_carry_.begin(), dh_carry_.end(), 0.0f);
    std::fill(dc_carry_.begin(), dc_carry_.end(), 0.0f);
    kept_columns_ = 0;
    std::vector<int> idx;
    for (int t = t_ - 1; t >= 0; --t) {
      gate_gradients_step(t, cont, dy);
      select_columns(t, idx);
      const int kept = int(idx.size());
      kept_columns_ += kept;
      const int64_t off = int64_t(t) * n_;
      // dG'_t [N, n'] and the kept rows of W_hc [n', H], W_xc [n', D].
      dgc_.resize(size_t(n_) * kept);
      for (int n = 0; n < n_; ++n) {
        const float* src = dgates_.data() + (off + n) * g4;
        float* dst = dgc_.data() + int64_t(n) * kept;
        for (int j = 0; j < kept; ++j) dst[j] = src[idx[size_t(j)]];
      }
      if (t > 0) {
        rows_h_.resize(size_t(kept) * h_);
        for (int j = 0; j < kept; ++j)
          std::memcpy(rows_h_.data() + int64_t(j) * h_, w_hc + int64_t(idx[size_t(j)]) * h_, sizeof(float) * size_t(h_));
        gemm(false, false, n_, h_, kept, 1.0f, dgc_.data(), rows_h_.data(), 0.0f, dh_carry_.data());
      }
      if (dx) {
        rows_x_.resize(size_t(kept) * d_);
        for (int j = 0; j < kept; ++j)
          std::memcpy(rows_x_.data() + int64_t(j) * d_, w_xc + int64_t(idx[size_t(j)]) * d_, sizeof(float) * size_t(d_));
        gemm(false, false, n_, d_, kept, 1.0f, dgc_.data(), rows_x_.data(), 0.0f, dx + off * d_);
      }
      if (need_wx) {
        dwc_.resize(size_t(kept) * d_);
        gemm(true, false, kept, d_, n_, 1.0f, dgc_.data(), x + off * d_, 0.0f, dwc_.data());
        float* dw = blobs_[0]->mutable_diff();
        for (int j = 0; j < kept; ++j) {
          float* d = dw + int64_t(idx[size_t(j)]) * d_;
          const float* s = dwc_.data() + int64_t(j) * d_;
          for (int k = 0; k < d_; ++k) d[k] += s[k];
        }
      }
      if (need_wh && t > 0) {
        dwc_.resize(size_t(kept) * h_);
        gemm(true, false, kept, h_, n_, 1.0f, dgc_.data(), hprev_.data() + off * h_, 0.0f, dwc_.data());
        float* dw = blobs_[2]->mutable_diff();
        for (int j = 0; j < kept; ++j) {
          float* d = dw + int64_t(idx[size_t(j)]) * h_;
          const float* s = dwc_.data() + int64_t(j) * h_;
          for (int k = 0; k < h_; ++k) d[k] += s[k];
        }
      }
      if (need_b) {
        float* db = blobs_[1]->mutable_diff();
        for (int n = 0; n < n_; ++n)
          for (int j = 0; j < kept; ++j) db[idx[size_t(j)]] += dgc_[size_t(n) * kept + j];
      }
    }
  }

  // Gate math of step t, after the recurrent GEMM: row block t of gates_ holds the pre-activations
  // [i f o g]~ on entry and the activations on exit; writes c_t (cell_), tanh(c_t) (tanh_cell_),
  // h_t (top block t) and h'_t = cont_{t+1} h_t (hprev_ block t + 1, the next step's GEMM input).
  void forward_step(int t, const float* cont, float* top_h) {
    const int64_t hh = h_, base = int64_t(t) * n_;
    const bool has_prev = t > 0, has_next = t + 1 < t_;
    parallel_for(n_, std::max<int64_t>(1, kGrainElems / hh), [&](int64_t n0, int64_t n1) {
      for (int64_t row = base + n0; row < base + n1; ++row) {
        cell_forward_row(hh, gates_.data() + row * 4 * hh, has_prev ? cell_.data() + (row - n_) * hh : nullptr,
                         has_prev ? cont[row] : 0.0f, cell_.data() + row * hh, tanh_cell_.data() + row * hh,
                         top_h + row * hh, has_next ? hprev_.data() + (row + n_) * hh : nullptr,
                         has_next ? cont[row + n_] : 0.0f, act_step_);
      }
    });
  }

  // The per-step gate gradients of BPTT: row block t of dgates_ = dG_t [N, 4H], the gradient of the
  // loss w.r.t. the gate pre-activations [i f o g]~ of step t, from
  //   dh_t = dy_t + cont_{t+1} dh_carry_          (dh_carry_ = dG_{t+1} W_hc from step t + 1)
  //   dc_t = cont_{t+1} dc_carry_ + dh_t o (1 - tanh^2 c_t)
  //   di~ = dc_t g i (1 - i)   df~ = dc_t c'_{t-1} f (1 - f)   do~ = dh_t tanh(c_t) o (1 - o)
  //   dg~ = dc_t i (1 - g^2)
  // and leaves dc_carry_ = dc_t f_t for step t - 1 (the cont_t factor is applied there).
  // The carries are the only state passed between steps, and every GEMM that consumes dG (the
  // dh_carry_ one per step, the input-side and dW_hc ones after the loop) reads it from dgates_.
  void gate_gradients_step(int t, const float* cont, const float* dy) {
    const int64_t hh = h_, base = int64_t(t) * n_;
    const bool has_prev = t > 0, has_next = t + 1 < t_;
    parallel_for(n_, std::max<int64_t>(1, kGrainElems / hh), [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t row = base + n;
        // At t = 0, c'_{-1} = 0: keep = 0 and c_prev points at any finite row (its own c_t).
        gate_gradients_row(hh, gates_.data() + row * 4 * hh, tanh_cell_.data() + row * hh,
                           cell_.data() + (has_prev ? row - n_ : row) * hh, has_prev ? cont[row] : 0.0f,
                           dy + row * hh, dh_carry_.data() + n * hh, has_next ? cont[row + n_] : 0.0f,
                           dc_carry_.data() + n * hh, dgates_.data() + row * 4 * hh);
      }
    });
  }

  int h_ = 0, d_ = 0;  // hidden size H, input size D
  // Fixed point: rounded W_xc, b_c, W_hc (empty = off) and the h grid step (0 = off).
  std::vector<float> rounded_[3];
  float act_step_ = 0.0f;
  int t_ = 0, n_ = 0;  // steps T and streams N of the current bottoms

  // Kept from forward for backward (rows are t N + n):
  std::vector<float> gates_;      // [T N, 4H] gate activations i, f, o, g
  std::vector<float> cell_;       // [T N, H] c_t
  std::vector<float> tanh_cell_;  // [T N, H] tanh(c_t)
  std::vector<float> hprev_;      // [T N, H] h'_{t-1} = cont_t h_{t-1}; block 0 is zero
  // Backward scratch:
  std::vector<float> dgates_;     // [T N, 4H] dG, all steps
  std::vector<float> dh_carry_;   // [N, H] dG_{t+1} W_hc while step t runs
  std::vector<float> dc_carry_;   // [N, H] dc_{t+1} f_{t+1} while step t runs
  std::vector<float> ones_;       // [>= T N] for the bias column sums
  // Structurally sparse backward:
  bool sparse_backward_ = false;  // run it in the next backward (set by the schedule)
  bool last_sparse_ = false;      // the last backward was sparse
  int64_t kept_columns_ = 0;      // gate columns kept, summed over the steps of the last backward
  std::vector<float> norm_, sorted_, dgc_, rows_h_, rows_x_, dwc_;
  // The device path's copies of gates_, cell_, tanh_cell_, hprev_, dgates_, dh_carry_, dc_carry_.
  DeviceArray<float> dev_gates_, dev_cell_, dev_tanh_cell_, dev_hprev_, dev_dgates_, dev_dh_carry_, dev_dc_carry_;
};

DSG_REGISTER_LAYER("LSTM", LSTMLayer);

}  // namespace dsg
