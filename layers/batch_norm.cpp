// BatchNorm (Caffe's "BatchNorm"): normalises each channel over the batch and spatial dims,
//   y = (x - mean_c) / sqrt(var_c + eps),
// for a bottom of shape (N, C) or (N, C, spatial...). No scale/shift (that is the Scale layer).
//
// Blobs (state, not learned): [0] running mean sum [C], [1] running variance sum [C],
// [2] moving-average factor [1]. With batch statistics each forward updates, as in Caffe,
//   factor = factor * maf + 1,  blob0 = blob0 * maf + mean,  blob1 = blob1 * maf + var * m/(m-1)
// (m = N * spatial), and global statistics are blob0 / factor and blob1 / factor. A channel that
// is exactly zero for the whole batch (not computed: a channel dropped for the mini-batch) adds no
// statistics: its global mean and variance stay as they were (and the first statistics of such a
// channel stand in for the passes it missed).
// use_global_stats defaults to (ctx.phase == TEST), decided per forward call unless
// batch_norm_param.use_global_stats is set. Backward recomputes y from the bottom, so later layers
// may modify the top in place (Scale, DSG's double mask); in place, forward keeps a copy of y.
// Device code: layers/batch_norm_kernels.hpp (per-channel sums in two stages of fixed order).
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "runtime/device_array.hpp"
#include "runtime/error.hpp"
#include "runtime/launch.hpp"
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"
#include "layers/batch_norm_kernels.hpp"

namespace dsg {

class BatchNormLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "BatchNorm"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;  // per element (or channel), but f(0) != 0
    return f;
  }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool allows_in_place() const override { return true; }
  bool blob_is_learnable(int) const override { return false; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64&) override {
    const auto& bp = param_.batch_norm_param();
    eps_ = bp.eps();
    maf_ = bp.moving_average_fraction();
    if (!(eps_ > 0.0f)) throw Error(where() + strfmt("eps must be positive, got %g", eps_));
    if (bottom[0]->num_axes() < 2)
      throw Error(where() + "needs a bottom of shape (N, C) or (N, C, H, W), got " + bottom[0]->shape_string());
    channels_ = bottom[0]->shape(1);
    blobs_.clear();
    blobs_.push_back(std::make_shared<Tensor>(std::vector<int>{channels_}));
    blobs_.push_back(std::make_shared<Tensor>(std::vector<int>{channels_}));
    blobs_.push_back(std::make_shared<Tensor>(std::vector<int>{1}));
    for (auto& b : blobs_) b->set_data(0.0f);
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    if (bottom[0]->num_axes() < 2 || bottom[0]->shape(1) != channels_)
      throw Error(where() + strfmt("expects %d channels on axis 1, got bottom ", channels_) +
                  bottom[0]->shape_string());
    top[0]->reshape_like(*bottom[0]);
    mean_.resize(size_t(channels_));
    inv_std_.resize(size_t(channels_));
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const auto& bp = param_.batch_norm_param();
    global_ = bp.has_use_global_stats() ? bp.use_global_stats() : ctx.phase == TEST;
    const int num = bottom[0]->shape(0), C = channels_;
    const int64_t spatial = bottom[0]->count(2), m = int64_t(num) * spatial;
    const float* x = bottom[0]->data();
    float* y = top[0]->mutable_data();
    float* run_mean = blobs_[0]->mutable_data();
    float* run_var = blobs_[1]->mutable_data();
    float* factor = blobs_[2]->mutable_data();
    if (global_) {
      const float s = factor[0] == 0.0f ? 0.0f : 1.0f / factor[0];
      for (int c = 0; c < C; ++c) {
        mean_[c] = run_mean[c] * s;
        inv_std_[c] = 1.0f / std::sqrt(run_var[c] * s + eps_);
      }
    } else if (m > 0) {
      const float bias_correction = m > 1 ? float(m) / float(m - 1) : 1.0f;
      for_channels(m, [&](int c) {
        double sum = 0, sumsq = 0;
        for (int n = 0; n < num; ++n) {
          const float* p = x + (int64_t(n) * C + c) * spatial;
          for (int64_t s = 0; s < spatial; ++s) sum += p[s];
        }
        const double mu = sum / double(m);
        for (int n = 0; n < num; ++n) {
          const float* p = x + (int64_t(n) * C + c) * spatial;
          for (int64_t s = 0; s < spatial; ++s) sumsq += (p[s] - mu) * (p[s] - mu);
        }
        const double var = sumsq / double(m);
        mean_[c] = float(mu);
        inv_std_[c] = float(1.0 / std::sqrt(var + eps_));
        if (mu == 0 && sumsq == 0) {
          // Not computed in this pass (DSG's batch-shared selection, a dropped or pruned channel):
          // no statistics. Adding the current global estimate keeps run / factor unchanged.
          const float keep = factor[0] == 0.0f ? 0.0f : 1.0f / factor[0];
          run_mean[c] = run_mean[c] * maf_ + run_mean[c] * keep;
          run_var[c] = run_var[c] * maf_ + run_var[c] * keep;
          return;
        }
        if (run_mean[c] == 0 && run_var[c] == 0 && factor[0] != 0) {
          // First statistics of a channel that was not computed before: they stand in for the
          // passes it missed, so the global estimate is not diluted by them.
          const float weight = factor[0] * maf_ + 1.0f;
          run_mean[c] = float(mu) * weight;
          run_var[c] = bias_correction * float(var) * weight;
          return;
        }
        run_mean[c] = run_mean[c] * maf_ + float(mu);
        run_var[c] = run_var[c] * maf_ + bias_correction * float(var);
      });
      factor[0] = factor[0] * maf_ + 1.0f;
    }
    for_channels(m, [&](int c) {
      const float mu = mean_[c], is = inv_std_[c];
      for (int n = 0; n < num; ++n) {
        const int64_t off = (int64_t(n) * C + c) * spatial;
        for (int64_t s = 0; s < spatial; ++s) y[off + s] = (x[off + s] - mu) * is;
      }
    });
    if (x == y) saved_y_.assign(y, y + top[0]->count());
    else saved_y_.clear();
  }

  // Device code (layers/batch_norm_kernels.hpp): the same statistics and running-sum updates as
  // forward_cpu, the per-channel sums in two stages of fixed order (deterministic), then one
  // thread per entry.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const auto& bp = param_.batch_norm_param();
    global_ = bp.has_use_global_stats() ? bp.use_global_stats() : ctx.phase == TEST;
    const bn_kernels::BnShape s = shape_of(*bottom[0]);
    const int64_t m = int64_t(s.num) * s.spatial;
    dmean_.resize(size_t(channels_));
    dinv_std_.resize(size_t(channels_));
    float* mean = dmean_.mutable_on(d);
    float* inv_std = dinv_std_.mutable_on(d);
    if (global_) {
      launch(d, channels_,
             bn_kernels::GlobalStats{eps_, blobs_[0]->data(d), blobs_[1]->data(d), blobs_[2]->data(d), mean, inv_std});
    } else if (m > 0) {
      const bn_kernels::Parts q = parts_of(m);
      const float* x = bottom[0]->data(d);
      dpart_.resize(size_t(2) * channels_ * q.parts);
      dmean_d_.resize(size_t(channels_));
      double* part = dpart_.mutable_on(d);
      double* mean_d = dmean_d_.mutable_on(d);
      float* factor = blobs_[2]->mutable_data(d);
      launch(d, int64_t(channels_) * q.parts, bn_kernels::PartialSums{s, q, x, nullptr, part}, 1);
      launch(d, channels_, bn_kernels::ChannelMean{s, q, part, mean_d}, 1);
      launch(d, int64_t(channels_) * q.parts, bn_kernels::PartialSums{s, q, x, mean_d, part}, 1);
      launch(d, channels_,
             bn_kernels::BatchStats{s, q, eps_, maf_, mean_d, part, factor, blobs_[0]->mutable_data(d),
                                    blobs_[1]->mutable_data(d), mean, inv_std},
             1);
      launch(d, 1, bn_kernels::BatchFactor{maf_, factor});
    }
    const float* x = bottom[0]->data(d);
    float* y = top[0]->mutable_data(d);
    launch(d, top[0]->count(), bn_kernels::Normalize{s, x, mean, inv_std, y});
    dsaved_in_place_ = x == y;
    if (dsaved_in_place_) {
      dsaved_y_.resize(size_t(top[0]->count()));
      ops_for(d).copy(top[0]->count(), y, dsaved_y_.mutable_on(d));
    }
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    const bn_kernels::BnShape s = shape_of(*bottom[0]);
    const int64_t m = int64_t(s.num) * s.spatial;
    const float* x = bottom[0]->data(d);
    const float* saved = bottom[0] == top[0] && dsaved_in_place_ ? dsaved_y_.on(d) : nullptr;
    const float* dy = top[0]->diff(d);
    const float* mean = dmean_.on(d);
    const float* inv_std = dinv_std_.on(d);
    const float* means = nullptr;
    if (!global_ && m > 0) {
      const bn_kernels::Parts q = parts_of(m);
      dpart_.resize(size_t(2) * channels_ * q.parts);
      dmeans_.resize(size_t(2) * channels_);
      double* part = dpart_.mutable_on(d);
      launch(d, int64_t(channels_) * q.parts, bn_kernels::BackwardParts{s, q, x, saved, dy, mean, inv_std, part}, 1);
      launch(d, channels_, bn_kernels::BackwardMeans{s, q, part, dmeans_.mutable_on(d)}, 1);
      means = dmeans_.on(d);
    }
    launch(d, bottom[0]->count(),
           bn_kernels::BackwardDx{s, x, saved, dy, mean, inv_std, means, bottom[0]->mutable_diff(d)});
  }

  // Batch statistics: dx = (dy - mean(dy) - y * mean(dy * y)) / sqrt(var + eps), means per channel.
  // Global statistics: dx = dy / sqrt(var + eps).
  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    const int num = bottom[0]->shape(0), C = channels_;
    const int64_t spatial = bottom[0]->count(2), m = int64_t(num) * spatial;
    const bool in_place = bottom[0] == top[0];
    const float* x = bottom[0]->data();
    const float* dy = top[0]->diff();
    float* dx = bottom[0]->mutable_diff();
    for_channels(m, [&](int c) {
      const float mu = mean_[c], is_c = inv_std_[c];
      auto y_at = [&](int64_t i) { return in_place ? saved_y_[size_t(i)] : (x[i] - mu) * is_c; };
      float mean_dy = 0, mean_dyy = 0;
      if (!global_ && m > 0) {
        double a = 0, b = 0;
        for (int n = 0; n < num; ++n) {
          const int64_t off = (int64_t(n) * C + c) * spatial;
          for (int64_t s = 0; s < spatial; ++s) {
            a += dy[off + s];
            b += double(dy[off + s]) * y_at(off + s);
          }
        }
        mean_dy = float(a / double(m));
        mean_dyy = float(b / double(m));
      }
      const float is = inv_std_[c];
      for (int n = 0; n < num; ++n) {
        const int64_t off = (int64_t(n) * C + c) * spatial;
        for (int64_t s = 0; s < spatial; ++s)
          dx[off + s] = (dy[off + s] - mean_dy - y_at(off + s) * mean_dyy) * is;
      }
    });
  }

 private:
  // Runs fn(c) for every channel, in parallel when there is enough work per chunk.
  template <class Fn>
  void for_channels(int64_t per_channel, Fn&& fn) const {
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, per_channel));
    parallel_for(channels_, grain, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) fn(int(c));
    });
  }

  // Runs of the two-stage per-channel sums: one run per kBnRun entries (at most kBnMaxParts).
  static bn_kernels::Parts parts_of(int64_t m) {
    constexpr int64_t kBnRun = 1024, kBnMaxParts = 1024;
    const int parts = int(std::clamp<int64_t>((m + kBnRun - 1) / kBnRun, 1, kBnMaxParts));
    return bn_kernels::Parts{parts, (m + parts - 1) / parts};
  }

  bn_kernels::BnShape shape_of(const Tensor& x) const {
    return bn_kernels::BnShape{x.shape(0), channels_, x.count(2)};
  }

  int channels_ = 0;
  float eps_ = 1e-5f, maf_ = 0.999f;
  bool global_ = false;                 // whether the last forward used the running statistics
  std::vector<float> mean_, inv_std_;   // per channel, from the last forward
  std::vector<float> saved_y_;          // y of the last forward when running in place
  // The device code's per-channel mean and 1 / std, backward's per-channel means of dy and dy y,
  // and the saved top when in place.
  DeviceArray<float> dmean_, dinv_std_, dmeans_, dsaved_y_;
  DeviceArray<double> dmean_d_, dpart_;  // batch means in double, per-run partial sums
  bool dsaved_in_place_ = false;
};

DSG_REGISTER_LAYER("BatchNorm", BatchNormLayer);

}  // namespace dsg
