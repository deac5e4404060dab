// Silence (Caffe's "Silence"): consumes blobs that nothing else uses (one or more bottoms, no
// tops), so they are not net outputs. Forward does nothing; backward writes zero diffs to the
// bottoms asked for, so a producer that copies its top diffs back (Slice) sees zero from them.
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"

namespace dsg {

class SilenceLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Silence"; }
  int min_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 0; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec&, const TensorVec&) override {}
  void forward_cpu(const TensorVec&, const TensorVec&, const Context&) override {}

  void backward_cpu(const TensorVec&, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    for (size_t b = 0; b < bottom.size(); ++b)
      if (propagate_down[b]) bottom[b]->zero_diff();
  }

  void forward_cuda(const TensorVec&, const TensorVec&, const Context&) override {}

  void backward_cuda(const TensorVec&, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    for (size_t b = 0; b < bottom.size(); ++b)
      if (propagate_down[b]) ops_for(ctx.device).fill(bottom[b]->count(), 0.0f, bottom[b]->mutable_diff(ctx.device));
  }
};

DSG_REGISTER_LAYER("Silence", SilenceLayer);

}  // namespace dsg
