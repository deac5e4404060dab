// The runner of the cross-device layer cases (tests/support/device_cases.hpp).
#include <catch2/catch.hpp>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <memory>
#include <random>
#include <sstream>

#include "runtime/error.hpp"
#include "runtime/storage.hpp"
#include "support/device_cases.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

namespace dsg::test {

std::vector<DeviceCase>& device_cases() {
  static std::vector<DeviceCase> cases;
  return cases;
}

DeviceCaseRegistrar::DeviceCaseRegistrar(std::vector<DeviceCase> cases) {
  for (auto& c : cases) device_cases().push_back(std::move(c));
}

std::vector<const DeviceCase*> device_cases_of(const std::string& type) {
  std::vector<const DeviceCase*> out;
  for (const DeviceCase& c : device_cases()) {
    LayerParameter lp;
    if (google::protobuf::TextFormat::ParseFromString(c.layer, &lp) && lp.type() == type) out.push_back(&c);
  }
  return out;
}

bool compare_buffers(const std::string& what, const float* got, const float* want, int64_t n, double terms) {
  double scale = 0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(want[i])) scale = std::max(scale, double(std::fabs(want[i])));
  int64_t bad = 0;
  std::ostringstream first;
  for (int64_t i = 0; i < n; ++i) {
    const double tol = reduction_tolerance(int64_t(std::ceil(terms)), std::fabs(double(want[i])) + scale);
    const bool same_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (same_nan || std::fabs(double(got[i]) - want[i]) <= tol) continue;
    if (bad++ < 5)
      first << "  [" << i << "] cpu " << want[i] << " target " << got[i] << " (|diff| "
            << std::fabs(double(got[i]) - want[i]) << ", tolerance " << tol << ")\n";
  }
  INFO(what << ": " << bad << " of " << n << " entries differ (terms " << terms << ")\n" << first.str());
  CHECK(bad == 0);
  return bad == 0;
}

namespace {

struct Side {
  std::unique_ptr<Layer> layer;
  std::vector<std::unique_ptr<Tensor>> bottoms, tops;
  TensorVec bottom, top;
};

void fill_uniform(Tensor& t, uint32_t seed) {
  const std::vector<float> v = uniform_vector(size_t(t.count()), seed);
  std::copy(v.begin(), v.end(), t.mutable_data());
}

void build(const DeviceCase& c, const LayerParameter& lp, Side& s) {
  s.layer = create_layer(lp);
  for (size_t i = 0; i < c.bottoms.size(); ++i) {
    s.bottoms.push_back(std::make_unique<Tensor>(c.bottoms[i]));
    if (c.fill) c.fill(int(i), *s.bottoms.back());
    else fill_uniform(*s.bottoms.back(), 100 + uint32_t(i));
    s.bottom.push_back(s.bottoms.back().get());
  }
  for (int t = 0; t < c.tops; ++t) {
    if (t == 0 && c.in_place) {
      s.top.push_back(s.bottom[0]);
      continue;
    }
    s.tops.push_back(std::make_unique<Tensor>());
    s.top.push_back(s.tops.back().get());
  }
  std::mt19937_64 rng(11);
  s.layer->setup(s.bottom, s.top, rng);
  if (c.prepare) c.prepare(*s.layer);
  // Parameter diffs start non-zero (the same on both sides).
  for (size_t b = 0; b < s.layer->blobs().size(); ++b) {
    Tensor& blob = *s.layer->blobs()[b];
    const std::vector<float> v = uniform_vector(size_t(blob.count()), 200 + uint32_t(b));
    std::copy(v.begin(), v.end(), blob.mutable_diff());
  }
}

}  // namespace

namespace {

// Moves a side's inputs (bottom values and diffs, top diffs, parameters) to the target device
// before a pass, so that the pass itself can be required to copy nothing.
void upload_inputs(Side& s, const Device& d, bool diffs) {
  for (Tensor* b : s.bottom) {
    b->data(d);
    if (diffs) b->diff(d);
  }
  if (diffs)
    for (Tensor* t : s.top) t->diff(d);
  for (auto& blob : s.layer->blobs()) {
    blob->data(d);
    blob->diff(d);
  }
}

// CHECKs that nothing was copied between host and device since the last reset.
void check_no_copies(const std::string& what) {
  const TransferStats t = transfer_stats();
  INFO(what << " copied between host and device: " << t.to_device_count << " to the device (" << t.to_device_bytes
            << " bytes), " << t.to_host_count << " to the host (" << t.to_host_bytes << " bytes)");
  CHECK(t.to_device_count == 0);
  CHECK(t.to_host_count == 0);
}

}  // namespace

void run_device_case(const DeviceCase& c, const Context& target, bool check_copies) {
  LayerParameter lp;
  if (!google::protobuf::TextFormat::ParseFromString(c.layer, &lp)) FAIL("case '" << c.name << "': bad prototxt");
  Side side[2];
  Context ctx[2];
  ctx[1] = target;
  for (int s = 0; s < 2; ++s) build(c, lp, side[s]);
  std::vector<bool> down = c.propagate;
  if (down.empty())
    for (size_t i = 0; i < c.bottoms.size(); ++i) down.push_back(side[0].layer->allow_backward_to(int(i)));

  const int passes = check_copies ? std::max(2, c.passes) : c.passes;
  for (int pass = 0; pass < passes; ++pass) {
    const std::string at = c.name + (c.passes > 1 ? " pass " + std::to_string(pass) : std::string()) + ": ";
    float loss[2];
    for (int s = 0; s < 2; ++s) {
      ctx[s].phase = c.phase;
      ctx[s].seed = 7;
      ctx[s].iteration = pass;
      // From the second pass on (buffers allocated, structure uploaded), a forward on the device
      // copies nothing: the loss is the only value read back, as a single scalar.
      const bool watch = s == 1 && check_copies && pass > 0;
      if (watch) upload_inputs(side[s], ctx[s].device, false), reset_transfer_stats();
      loss[s] = side[s].layer->forward(side[s].bottom, side[s].top, ctx[s]);
      if (watch) check_no_copies(at + "forward");
    }
    {
      INFO(at << "loss cpu " << loss[0] << " target " << loss[1]);
      CHECK(std::fabs(double(loss[1]) - loss[0]) <=
            reduction_tolerance(int64_t(c.terms) + (side[0].top.empty() ? 0 : side[0].top[0]->count()),
                                std::fabs(loss[0]) + 1.0));
    }
    for (int t = 0; t < c.tops; ++t)
      compare_buffers(at + "top " + std::to_string(t), side[1].top[size_t(t)]->data(), side[0].top[size_t(t)]->data(),
                      side[0].top[size_t(t)]->count(), c.terms);
    if (!c.backward) continue;
    for (int s = 0; s < 2; ++s) {
      for (int t = 0; t < c.tops; ++t) {
        Tensor& top = *side[s].top[size_t(t)];
        const std::vector<float> v = uniform_vector(size_t(top.count()), 400 + uint32_t(t + 10 * pass));
        std::copy(v.begin(), v.end(), top.mutable_diff());
      }
      for (size_t i = 0; i < side[s].bottoms.size(); ++i) {
        if (c.in_place && i == 0) continue;
        Tensor& b = *side[s].bottoms[i];
        const std::vector<float> v = uniform_vector(size_t(b.count()), 500 + uint32_t(i));
        std::copy(v.begin(), v.end(), b.mutable_diff());
      }
      const bool watch = s == 1 && check_copies && pass > 0;
      if (watch) upload_inputs(side[s], ctx[s].device, true), reset_transfer_stats();
      side[s].layer->backward(side[s].top, down, side[s].bottom, ctx[s]);
      if (watch) check_no_copies(at + "backward");
    }
    for (size_t i = 0; i < c.bottoms.size(); ++i)
      if (down[i])
        compare_buffers(at + "bottom diff " + std::to_string(i), side[1].bottoms[i]->diff(),
                        side[0].bottoms[i]->diff(), side[0].bottoms[i]->count(), c.terms);
    for (size_t b = 0; b < side[0].layer->blobs().size(); ++b) {
      const Tensor& want = *side[0].layer->blobs()[b];
      const Tensor& got = *side[1].layer->blobs()[b];
      compare_buffers(at + "blob " + std::to_string(b) + " data", got.data(), want.data(), want.count(), c.terms);
      compare_buffers(at + "blob " + std::to_string(b) + " diff", got.diff(), want.diff(), want.count(), c.terms);
    }
  }
}

}  // namespace dsg::test
