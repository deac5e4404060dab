// Eltwise (Caffe's "Eltwise"): combines equally shaped bottoms element by element.
//   PROD: y = prod_b x_b             dx_b = dy * prod_{b' != b} x_b'
//   SUM:  y = sum_b coeff_b * x_b    dx_b = coeff_b * dy   (coeff: none or one per bottom; default 1)
//   MAX:  y = max_b x_b              dx_b = dy where bottom b held the max (ties: as Caffe, the
//                                    second of the first two bottoms, then the earlier one)
// The PROD gradient always multiplies the other bottoms (Caffe's stable_prod_grad), so zeros are safe.
#include <algorithm>
#include <vector>

#include "layers/elementwise_kernels.hpp"
#include "runtime/device_array.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class EltwiseLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Eltwise"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kEltwise;
    f.intersect = param_.eltwise_param().operation() == EltwiseParameter::PROD;
    return f;
  }
  int min_num_bottoms() const override { return 2; }
  int exact_num_tops() const override { return 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64&) override {
    const auto& ep = param_.eltwise_param();
    op_ = ep.operation();
    if (ep.coeff_size() > 0 && op_ == EltwiseParameter::PROD)
      throw Error(where() + "coeff is only supported for the SUM operation, not PROD");
    if (ep.coeff_size() > 0 && ep.coeff_size() != int(bottom.size()))
      throw Error(where() + strfmt("needs one coeff per bottom: %d coeff for %d bottoms", ep.coeff_size(),
                                   int(bottom.size())));
    coeff_.assign(bottom.size(), 1.0f);
    for (int i = 0; i < ep.coeff_size(); ++i) coeff_[i] = ep.coeff(i);
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    for (size_t b = 1; b < bottom.size(); ++b)
      if (bottom[b]->shape() != bottom[0]->shape())
        throw Error(where() + "bottom " + std::to_string(b) + " " + bottom[b]->shape_string() +
                    " does not match bottom 0 " + bottom[0]->shape_string());
    top[0]->reshape_like(*bottom[0]);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const int64_t n = top[0]->count();
    const size_t nb = bottom.size();
    std::vector<const float*> x(nb);
    for (size_t b = 0; b < nb; ++b) x[b] = bottom[b]->data();
    float* y = top[0]->mutable_data();
    if (op_ == EltwiseParameter::MAX) argmax_.resize(size_t(n));
    int* arg = argmax_.data();
    parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        switch (op_) {
          case EltwiseParameter::PROD: {
            float v = x[0][i];
            for (size_t b = 1; b < nb; ++b) v *= x[b][i];
            y[i] = v;
            break;
          }
          case EltwiseParameter::SUM: {
            float v = 0;
            for (size_t b = 0; b < nb; ++b) v += coeff_[b] * x[b][i];
            y[i] = v;
            break;
          }
          case EltwiseParameter::MAX: {
            int best = x[0][i] > x[1][i] ? 0 : 1;
            float v = x[best][i];
            for (size_t b = 2; b < nb; ++b)
              if (x[b][i] > v) { v = x[b][i]; best = int(b); }
            y[i] = v;
            arg[i] = best;
            break;
          }
        }
      }
    });
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    const int64_t n = top[0]->count();
    const size_t nb = bottom.size();
    const float* dy = top[0]->diff();
    const int* arg = argmax_.data();
    std::vector<const float*> x(nb);
    for (size_t k = 0; k < nb; ++k) x[k] = bottom[k]->data();
    for (size_t b = 0; b < nb; ++b) {
      if (!propagate_down[b]) continue;
      float* dx = bottom[b]->mutable_diff();
      parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          switch (op_) {
            case EltwiseParameter::PROD: {
              float v = dy[i];
              for (size_t k = 0; k < nb; ++k)
                if (k != b) v *= x[k][i];
              dx[i] = v;
              break;
            }
            case EltwiseParameter::SUM: dx[i] = coeff_[b] * dy[i]; break;
            case EltwiseParameter::MAX: dx[i] = arg[i] == int(b) ? dy[i] : 0.0f; break;
          }
        }
      });
    }
  }

  // The device code: bodies over up to kEltwiseChunk bottoms per launch, continuing from the
  // partial result, so each element sees the CPU path's operations in its order.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const int64_t n = top[0]->count();
    const int nb = int(bottom.size());
    if (op_ == EltwiseParameter::MAX) device_argmax_.resize(size_t(n));
    EltwiseForward body{};
    body.op = device_op();
    body.y = top[0]->mutable_data(d);
    body.arg = op_ == EltwiseParameter::MAX ? device_argmax_.mutable_on(d) : nullptr;
    for (body.first = 0; body.first < nb; body.first += kEltwiseChunk) {
      body.count = std::min(kEltwiseChunk, nb - body.first);
      for (int k = 0; k < body.count; ++k) {
        body.x[k] = bottom[size_t(body.first + k)]->data(d);
        body.coeff[k] = coeff_[size_t(body.first + k)];
      }
      launch(d, n, body);
    }
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    const Device& d = ctx.device;
    const int64_t n = top[0]->count();
    const int nb = int(bottom.size());
    const float* dy = top[0]->diff(d);
    if (op_ == EltwiseParameter::MAX && int64_t(device_argmax_.size()) != n)
      throw Error(where() + "MAX backward without a matching forward for shape " + top[0]->shape_string());
    for (int b = 0; b < nb; ++b) {
      if (!propagate_down[size_t(b)]) continue;
      float* dx = bottom[size_t(b)]->mutable_diff(d);
      if (op_ != EltwiseParameter::PROD) {
        launch(d, n,
               EltwiseSumMaxBackward{op_ == EltwiseParameter::MAX, b, coeff_[size_t(b)],
                                     op_ == EltwiseParameter::MAX ? device_argmax_.on(d) : nullptr, dy, dx});
        continue;
      }
      EltwiseProdBackward body{};
      body.target = b;
      body.dy = dy;
      body.dx = dx;
      for (body.first = 0; body.first < nb; body.first += kEltwiseChunk) {
        body.count = std::min(kEltwiseChunk, nb - body.first);
        for (int k = 0; k < body.count; ++k) body.x[k] = bottom[size_t(body.first + k)]->data(d);
        launch(d, n, body);
      }
    }
  }

 private:
  EltwiseKernelOp device_op() const {
    switch (op_) {
      case EltwiseParameter::PROD: return EltwiseKernelOp::kProd;
      case EltwiseParameter::MAX: return EltwiseKernelOp::kMax;
      default: return EltwiseKernelOp::kSum;
    }
  }

  EltwiseParameter::EltwiseOp op_ = EltwiseParameter::SUM;
  std::vector<float> coeff_;
  std::vector<int> argmax_;  // MAX: index of the winning bottom per element, from the last forward
  DeviceArray<int> device_argmax_;  // the same, of the device code
};

DSG_REGISTER_LAYER("Eltwise", EltwiseLayer);

}  // namespace dsg
