// Concat (Caffe's "Concat"): joins the bottoms along concat_param.axis (default 1; the legacy
// concat_dim is accepted instead, not both). All bottoms must agree on every other axis.
// Backward copies the matching slices of the top diff back to each bottom.
#include <algorithm>
#include <cstring>

#include "layers/copy_kernels.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class ConcatLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Concat"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kConcat;
    f.axis = axis_;
    return f;
  }
  int min_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec&, const TensorVec&, std::mt19937_64&) override {
    const auto& cp = param_.concat_param();
    if (cp.has_axis() && cp.has_concat_dim())
      throw Error(where() + "either axis or concat_dim should be specified, not both");
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const auto& cp = param_.concat_param();
    const Tensor& first = *bottom[0];
    const int axis = cp.has_concat_dim() ? int(cp.concat_dim()) : cp.axis();
    if (axis < -first.num_axes() || axis >= first.num_axes())
      throw Error(where() + strfmt("axis %d out of range for bottom ", axis) + first.shape_string());
    axis_ = first.canonical_axis(axis);
    std::vector<int> shape = first.shape();
    for (size_t b = 1; b < bottom.size(); ++b) {
      const Tensor& t = *bottom[b];
      bool ok = t.num_axes() == first.num_axes();
      for (int i = 0; ok && i < t.num_axes(); ++i) ok = i == axis_ || t.shape()[i] == first.shape()[i];
      if (!ok)
        throw Error(where() + "bottom " + std::to_string(b) + " " + t.shape_string() + " does not match bottom 0 " +
                    first.shape_string() + " outside the concat axis " + std::to_string(axis_));
      shape[axis_] += t.shape(axis_);
    }
    top[0]->reshape(shape);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    transfer(bottom, *top[0], nullptr, true);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    transfer(bottom, *top[0], &propagate_down, false);
  }

  // The device code: one strided block copy per bottom.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    transfer_on(ctx.device, bottom, *top[0], nullptr, true);
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    transfer_on(ctx.device, bottom, *top[0], &propagate_down, false);
  }

 private:
  // transfer() on device `d`.
  void transfer_on(const Device& d, const TensorVec& bottom, Tensor& top, const std::vector<bool>* which,
                   bool forward) const {
    const int64_t outer = top.count(0, axis_), inner = top.count(axis_ + 1);
    const int64_t top_row = int64_t(top.shape(axis_)) * inner;
    int64_t offset = 0;
    for (size_t b = 0; b < bottom.size(); ++b) {
      const int64_t row = int64_t(bottom[b]->shape(axis_)) * inner;
      if (row > 0 && (!which || (*which)[b])) {
        const StridedCopy body = forward
            ? StridedCopy{row, row, top_row, bottom[b]->data(d), top.mutable_data(d) + offset}
            : StridedCopy{row, top_row, row, top.diff(d) + offset, bottom[b]->mutable_diff(d)};
        launch(d, outer * row, body);
      }
      offset += row;
    }
  }

  // Copies each bottom's data into its slice of the top (forward), or the top diff's slices back
  // into the bottom diffs selected by `which` (backward).
  void transfer(const TensorVec& bottom, Tensor& top, const std::vector<bool>* which, bool forward) const {
    const int64_t outer = top.count(0, axis_), inner = top.count(axis_ + 1);
    const int64_t top_row = int64_t(top.shape(axis_)) * inner;
    int64_t offset = 0;
    for (size_t b = 0; b < bottom.size(); ++b) {
      const int64_t row = int64_t(bottom[b]->shape(axis_)) * inner;
      if (!which || (*which)[b]) {
        float* t = forward ? top.mutable_data() : top.mutable_diff();
        float* s = forward ? bottom[b]->mutable_data() : bottom[b]->mutable_diff();
        const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, row));
        parallel_for(outer, grain, [&](int64_t begin, int64_t end) {
          for (int64_t o = begin; o < end; ++o) {
            float* tp = t + o * top_row + offset;
            float* sp = s + o * row;
            if (forward) std::memcpy(tp, sp, sizeof(float) * size_t(row));
            else std::memcpy(sp, tp, sizeof(float) * size_t(row));
          }
        });
      }
      offset += row;
    }
  }

  int axis_ = 1;
};

DSG_REGISTER_LAYER("Concat", ConcatLayer);

}  // namespace dsg
