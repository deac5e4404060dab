// Accuracy (Caffe's "Accuracy"): fraction of positions whose true class is among the top_k
// scores (default 1) along accuracy_param.axis (default 1).
//   bottom[0]: scores (outer, C, inner...), bottom[1]: outer * inner labels (class ids as floats).
//   top[0]: accuracy, shape (1). Optional top[1]: per-class accuracy, shape (C).
// As in Caffe, a tie with the true class's score counts against it. Positions whose label equals
// accuracy_param.ignore_label are skipped. No backward.
#include <cmath>
#include <limits>
#include <vector>

#include "layers/accuracy_kernels.hpp"
#include "runtime/device_array.hpp"

#include "runtime/error.hpp"
#include "runtime/layer.hpp"

namespace dsg {

class AccuracyLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Accuracy"; }
  bool reads_class_scores() const override { return true; }
  std::optional<LabelScoring> label_scoring() const override {
    const auto& ap = param_.accuracy_param();
    return LabelScoring{ap.axis(), ap.has_ignore_label(), ap.ignore_label()};
  }
  int exact_num_bottoms() const override { return 2; }
  int min_num_tops() const override { return 1; }
  int max_num_tops() const override { return 2; }
  bool allow_backward_to(int) const override { return false; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec&, const TensorVec&, std::mt19937_64&) override {
    const auto& ap = param_.accuracy_param();
    top_k_ = int64_t(ap.top_k());
    has_ignore_ = ap.has_ignore_label();
    ignore_ = ap.ignore_label();
    if (top_k_ < 1) throw Error(where() + "top_k must be at least 1");
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    const int axis = param_.accuracy_param().axis();
    if (axis < -x.num_axes() || axis >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for scores ", axis) + x.shape_string());
    const int a = x.canonical_axis(axis);
    outer_ = x.count(0, a);
    channels_ = x.shape(a);
    inner_ = x.count(a + 1);
    if (top_k_ > channels_)
      throw Error(where() + strfmt("top_k %lld exceeds the number of classes in scores ", (long long)top_k_) +
                  x.shape_string());
    if (bottom[1]->count() != outer_ * inner_)
      throw Error(where() + "number of labels must match number of predictions: scores " + x.shape_string() +
                  " need " + std::to_string(outer_ * inner_) + " labels, got labels " + bottom[1]->shape_string());
    top[0]->reshape({1});
    if (top.size() > 1) top[1]->reshape({int(channels_)});
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    const float* label = bottom[1]->data();
    const int64_t C = channels_, inner = inner_;
    std::vector<int64_t> per_class_total(size_t(C), 0), per_class_hits(size_t(C), 0);
    int64_t hits = 0, total = 0;
    for (int64_t k = 0; k < outer_ * inner_; ++k) {
      const float v = label[k];
      if (has_ignore_ && v == float(ignore_)) continue;
      if (!(v >= 0.0f && v < float(C)))
        throw Error(where() + strfmt("label %g at position %lld is outside [0, C) with C = %lld classes", v,
                                     (long long)k, (long long)C));
      const int64_t target = int64_t(v);
      const int64_t base = (k / inner) * C * inner + k % inner;
      const float true_score = x[base + target * inner];
      // The true class counts itself. A non-finite score anywhere in the row is a miss: NaN compares
      // false with everything, so it would otherwise rank the true class first.
      int64_t better = std::isfinite(true_score) ? -1 : top_k_;
      for (int64_t c = 0; c < C && better < top_k_; ++c) {
        const float sc = x[base + c * inner];
        better += std::isfinite(sc) ? int64_t(sc >= true_score) : top_k_;
      }
      ++per_class_total[target];
      ++total;
      if (better < top_k_) {
        ++hits;
        ++per_class_hits[target];
      }
    }
    top[0]->mutable_data()[0] = total == 0 ? 0.0f : float(double(hits) / double(total));
    if (top.size() > 1) {
      float* pc = top[1]->mutable_data();
      for (int64_t c = 0; c < C; ++c)
        pc[c] = per_class_total[c] == 0 ? 0.0f : float(double(per_class_hits[c]) / double(per_class_total[c]));
    }
  }

  void backward_cpu(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}

  // The device code: counts on the device (layers/accuracy_kernels.hpp), no host read. A label
  // outside [0, C) gives a NaN accuracy instead of the CPU path's error (checking it would read
  // the labels back).
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const int64_t positions = outer_ * inner_, chunks = (positions + kAccuracyChunk - 1) / kAccuracyChunk;
    codes_.resize(size_t(positions));
    counts_.resize(size_t(3 * chunks));
    launch(d, positions,
           AccuracyMark{channels_, inner_, top_k_, has_ignore_, ignore_, bottom[0]->data(d), bottom[1]->data(d),
                        codes_.mutable_on(d)});
    launch(d, chunks, AccuracyCount{positions, codes_.on(d), counts_.mutable_on(d)});
    const bool per_class = top.size() > 1;
    launch(d, 1 + (per_class ? channels_ : 0),
           AccuracyFinish{positions, chunks, std::numeric_limits<float>::quiet_NaN(), codes_.on(d), counts_.on(d),
                          top[0]->mutable_data(d), per_class ? top[1]->mutable_data(d) : nullptr});
  }

  void backward_cuda(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}

 private:
  DeviceArray<int> codes_;        // per position: AccuracyMark's code
  DeviceArray<int64_t> counts_;   // per chunk: hits, counted, invalid
  int64_t top_k_ = 1;
  bool has_ignore_ = false;
  int ignore_ = -1;
  int64_t outer_ = 1, channels_ = 1, inner_ = 1;
};

DSG_REGISTER_LAYER("Accuracy", AccuracyLayer);

}  // namespace dsg
