// The Data layer's device path (forward_cuda) run on the host (Context::device_code_on_host): the
// tops must equal the CPU path's bit for bit, batch after batch, for image and TEXT sources, in
// TRAIN (shuffle, random crop, mirror) and TEST.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "datasets/data_layer.hpp"
#include "datasets/synthetic_data.hpp"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/storage.hpp"

using namespace dsg;
using namespace dsg::test;

namespace {

// Sets up two layers from `p` with `tops` tops, forwards `batches` batches through the CPU path on
// one and the device path on the other, and compares every top of every batch exactly.
void compare_paths(const LayerParameter& p, int tops, int batches) {
  std::vector<std::unique_ptr<Tensor>> cpu_tops, dev_tops;
  TensorVec cpu, dev;
  for (int i = 0; i < tops; ++i) {
    cpu_tops.push_back(std::make_unique<Tensor>());
    dev_tops.push_back(std::make_unique<Tensor>());
    cpu.push_back(cpu_tops.back().get());
    dev.push_back(dev_tops.back().get());
  }
  std::unique_ptr<Layer> a = create_layer(p), b = create_layer(p);
  std::mt19937_64 rng_a(1), rng_b(1);
  a->setup({}, cpu, rng_a);
  b->setup({}, dev, rng_b);
  for (int batch = 0; batch < batches; ++batch) {
    Context ctx;
    ctx.seed = 17;
    ctx.phase = p.phase();
    a->forward({}, cpu, ctx);
    Context on_host = ctx;
    on_host.device_code_on_host = true;
    b->forward({}, dev, on_host);
    for (int i = 0; i < tops; ++i) {
      const Tensor& want = *cpu_tops[size_t(i)];
      const Tensor& got = *dev_tops[size_t(i)];
      REQUIRE(got.shape() == want.shape());
      int64_t mismatches = 0;
      for (int64_t e = 0; e < want.count(); ++e) mismatches += got.data()[e] != want.data()[e];
      INFO("batch " << batch << ", top " << i);
      CHECK(mismatches == 0);
    }
  }
}

LayerParameter data_param(const std::string& source, int batch, Phase phase, DataParameter::DB backend) {
  LayerParameter p;
  p.set_name("data");
  p.set_type("Data");
  p.set_phase(phase);
  p.add_top("data");
  p.add_top("label");
  DataParameter* d = p.mutable_data_param();
  d->set_backend(backend);
  d->set_source(source);
  d->set_batch_size(uint32_t(batch));
  return p;
}

// "Device" memory in separate host allocations (ordinal 0), counting the copies it is asked for.
class FakeBackend : public DeviceBackend {
 public:
  const char* name() const override { return "fake"; }
  void check_device(int ordinal) const override {
    if (ordinal != 0) throw Error(strfmt("fake backend: no device %d", ordinal));
  }
  void* allocate(int, size_t bytes) override { return std::malloc(bytes); }
  void release(int, void* p) noexcept override { std::free(p); }
  void copy_to_device(int, void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    ++to_device;
  }
  void copy_to_host(int, void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    ++to_host;
  }
  void zero(int, void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  int to_device = 0, to_host = 0;
};

}  // namespace

TEST_CASE("Data layer on a (fake) CUDA device: one upload per top and batch, nothing comes back",
          "[data][layer][device_code]") {
  if (!cuda_built()) return;  // a CPU-only build refuses CUDA contexts before any layer code runs
  FakeBackend backend;
  DeviceBackend* previous = set_device_backend(&backend);
  {
    TempDir dir;
    LayerParameter p = data_param(write_idx_pair(dir, "d", 13, 4, 4), 3, TRAIN, DataParameter::IDX);
    p.mutable_transform_param()->set_mirror(true);
    std::unique_ptr<Layer> a = create_layer(p), b = create_layer(p);
    Tensor cpu_data, cpu_label, dev_data, dev_label;
    std::mt19937_64 rng_a(1), rng_b(1);
    a->setup({}, {&cpu_data, &cpu_label}, rng_a);
    b->setup({}, {&dev_data, &dev_label}, rng_b);
    Context cpu, gpu;
    cpu.seed = gpu.seed = 3;
    gpu.device = Device::cuda(0);
    for (int batch = 0; batch < 4; ++batch) {
      a->forward({}, {&cpu_data, &cpu_label}, cpu);
      b->forward({}, {&dev_data, &dev_label}, gpu);
      CHECK(backend.to_device == 2 * (batch + 1));
      CHECK(backend.to_host == 0);
      // The fake device memory is host memory: compare it with the CPU path's tops directly.
      CHECK(std::memcmp(dev_data.data(gpu.device), cpu_data.data(), sizeof(float) * size_t(cpu_data.count())) == 0);
      CHECK(std::memcmp(dev_label.data(gpu.device), cpu_label.data(), sizeof(float) * size_t(cpu_label.count())) == 0);
    }
  }
  set_device_backend(previous);
}

TEST_CASE("Data layer device path on the host: IDX TRAIN with shuffle, crop, mirror, scale and mean",
          "[data][layer][device_code]") {
  TempDir dir;
  LayerParameter p = data_param(write_idx_pair(dir, "d", 23, 6, 7), 5, TRAIN, DataParameter::IDX);
  p.mutable_data_param()->set_shuffle(true);
  p.mutable_transform_param()->set_crop_size(4);
  p.mutable_transform_param()->set_mirror(true);
  p.mutable_transform_param()->set_scale(0.25f);
  p.mutable_transform_param()->add_mean_value(7.0f);
  compare_paths(p, 2, 7);
}

TEST_CASE("Data layer device path on the host: IDX TEST, data top only", "[data][layer][device_code]") {
  TempDir dir;
  LayerParameter p = data_param(write_idx_pair(dir, "d", 11, 4, 5), 4, TEST, DataParameter::IDX);
  p.clear_top();
  p.add_top("data");
  compare_paths(p, 1, 4);
}

TEST_CASE("Data layer device path on the host: TEXT sequences with cont", "[data][layer][device_code]") {
  TempDir dir;
  std::string text;
  uint32_t x = 99;
  for (int i = 0; i < 300; ++i) {
    x = x * 1103515245u + 12345u;
    text.push_back(i % 13 == 12 ? '\n' : char('a' + (x >> 16) % 9));
  }
  const std::string path = dir.file("text.txt");
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  LayerParameter p = data_param(path, 3, TRAIN, DataParameter::TEXT);
  p.add_top("cont");
  p.mutable_data_param()->set_sequence_length(6);
  p.mutable_data_param()->set_validation_fraction(0.25f);
  p.mutable_data_param()->set_shuffle(true);
  compare_paths(p, 3, 5);
}
