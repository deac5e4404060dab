// Cross-device layer cases (written with designated initializers, which g++ accepts in C++17): one table of layer configurations that every layer with device code
// is checked on, twice:
//   - tests/layers/test_device_code.cpp runs each case's device code on the host
//     (Context::device_code_on_host) against the CPU path, on every machine, in dsg_tests;
//   - tests/gpu/test_gpu_layers.cpp runs it on CUDA device 0 against the CPU path, in dsg_gpu_tests.
// A case file in tests/cases/ registers its cases with DSG_DEVICE_CASES; both binaries compile it.
//
// run_device_case builds the layer twice from the same parameter and seed, fills the same bottoms,
// runs `passes` forward/backward passes on the CPU path (the oracle) and on the target, and
// compares the loss, every top, every propagated bottom diff, and every blob's data and diff
// (parameter diffs start from the same non-zero values, so "=" where "+=" is due shows). The
// tolerance follows the arithmetic (tests/support/tolerance.hpp): entry i of a buffer may differ by
//   kReductionSlack * terms * FLT_EPSILON * (|ref_i| + max_j |ref_j|) + kAbsFloor,
// `terms` being the longest chain of float additions behind any entry (a case states it: the GEMM
// K, the pooled window, the batch of a statistic). Two summation orders differ by about
// sqrt(terms) eps M with M = sum |terms| ~ sqrt(terms) |typical value| for mixed signs, which the
// bound covers; a wrong index moves an entry by the order of the values, far above it.
// Elementwise cases use terms = 1: their results must agree to the last bit or two, and random
// patterns (dropout masks) must be identical.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "runtime/context.hpp"
#include "runtime/layer.hpp"
#include "runtime/tensor.hpp"

namespace dsg::test {

struct DeviceCase {
  std::string name;                            // unique, shown on failure
  std::string layer;                           // LayerParameter in prototxt text
  std::vector<std::vector<int>> bottoms;       // bottom shapes
  int tops = 1;
  // Fills bottom `index` (both sides get the same values); default: uniform in [-1, 1).
  std::function<void(int index, Tensor& bottom)> fill;
  // Called after setup on both sides (structure: set_active_outputs / set_active_inputs ...).
  std::function<void(Layer& layer)> prepare;
  // Which bottoms get diffs; default: every bottom the layer allows backward to.
  std::vector<bool> propagate;
  Phase phase = TRAIN;
  int passes = 1;                              // forward/backward passes (state, running statistics)
  bool backward = true;                        // false: forward only (Accuracy, Silence, Data-like)
  double terms = 1;                            // longest float reduction behind an entry (see above)
  bool in_place = false;                       // top 0 is bottom 0 (ReLU, Dropout ... in place)
};

std::vector<DeviceCase>& device_cases();
// The cases of the layer `type` (the "type:" of their prototxt).
std::vector<const DeviceCase*> device_cases_of(const std::string& type);

struct DeviceCaseRegistrar {
  explicit DeviceCaseRegistrar(std::vector<DeviceCase> cases);
};
#define DSG_DEVICE_CASES_CAT2(a, b) a##b
#define DSG_DEVICE_CASES_CAT(a, b) DSG_DEVICE_CASES_CAT2(a, b)
// DSG_DEVICE_CASES({case, case, ...}); at namespace scope, once or more per file.
#define DSG_DEVICE_CASES(...) \
  static ::dsg::test::DeviceCaseRegistrar DSG_DEVICE_CASES_CAT(dsg_device_cases_, __LINE__)(__VA_ARGS__)

// Runs `c` on the CPU path and on `target` (a CUDA device, a SimulatedDevice, or the CPU with
// device_code_on_host) and CHECKs every comparison, naming the buffer and its first mismatching
// indices. With `check_copies` (a device target) it runs at least two passes and CHECKs that from
// the second on neither forward nor backward copies anything between host and device once the
// inputs are there (a host accessor in device code would).
void run_device_case(const DeviceCase& c, const Context& target, bool check_copies = false);

// Compares `n` values of a target buffer with the CPU's within the tolerance above; reports the
// first five mismatches (index, both values, tolerance) and returns whether all matched.
bool compare_buffers(const std::string& what, const float* got, const float* want, int64_t n, double terms);

}  // namespace dsg::test
