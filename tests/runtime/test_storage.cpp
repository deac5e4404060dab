// Storage's lazy host/device synchronisation and the transfer counters, on the CPU: a fake backend
// whose "device" memory is separate host buffers stands in for a GPU, so every state change and
// every copy is observable.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <set>

#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/storage.hpp"
#include "runtime/tensor.hpp"

using namespace dsg;
using Head = Storage::Head;

namespace {

// Device memory in separate host allocations; one device (ordinal 0); counts what it is asked to do.
class FakeBackend : public DeviceBackend {
 public:
  const char* name() const override { return "fake"; }
  void check_device(int ordinal) const override {
    if (ordinal != 0) throw Error(strfmt("fake backend: no device %d", ordinal));
  }
  void* allocate(int, size_t bytes) override {
    void* p = std::malloc(bytes);
    live.insert(p);
    ++allocations;
    return p;
  }
  void release(int, void* p) noexcept override {
    live.erase(p);
    std::free(p);
  }
  void copy_to_device(int, void* dst, const void* src, size_t bytes) override {
    REQUIRE(live.count(dst));
    std::memcpy(dst, src, bytes);
    ++to_device;
  }
  void copy_to_host(int, void* dst, const void* src, size_t bytes) override {
    REQUIRE(live.count(const_cast<void*>(src)));
    std::memcpy(dst, src, bytes);
    ++to_host;
  }
  void zero(int, void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }

  std::set<void*> live;
  int allocations = 0, to_device = 0, to_host = 0;
};

// Installs a FakeBackend for the scope of a test and resets the counters.
struct FakeDevice {
  FakeDevice() : previous(set_device_backend(&backend)) { reset_transfer_stats(); }
  ~FakeDevice() { set_device_backend(previous); }
  FakeBackend backend;
  DeviceBackend* previous;
};

const Device kDev = Device::cuda(0);

}  // namespace

TEST_CASE("a new storage is zeroed on the host and uninitialized until used", "[storage]") {
  FakeDevice fake;
  Storage s(10);
  CHECK(s.head() == Head::kUninitialized);
  CHECK(s.device_ordinal() == -1);
  for (size_t i = 0; i < 10; ++i) CHECK(s.host()[i] == 0.0f);
  CHECK(s.head() == Head::kHost);
  CHECK(fake.backend.allocations == 0);
  CHECK(transfer_stats().to_device_count == 0);
}

TEST_CASE("first device use of an untouched storage zeroes device memory without a copy", "[storage]") {
  FakeDevice fake;
  Storage s(6);
  const float* d = s.device(0);
  CHECK(s.head() == Head::kDevice);
  CHECK(fake.backend.allocations == 1);
  for (int i = 0; i < 6; ++i) CHECK(d[i] == 0.0f);
  CHECK(transfer_stats().to_device_count == 0);
  CHECK(transfer_stats().to_host_count == 0);
}

TEST_CASE("host writes reach the device once, device writes reach the host once", "[storage]") {
  FakeDevice fake;
  Storage s(4);
  float* h = s.mutable_host();
  for (int i = 0; i < 4; ++i) h[i] = float(i + 1);
  CHECK(s.head() == Head::kHost);

  const float* d = s.device(0);
  CHECK(s.head() == Head::kSynced);
  CHECK(d[3] == 4.0f);
  TransferStats t = transfer_stats();
  CHECK(t.to_device_count == 1);
  CHECK(t.to_device_bytes == 4 * sizeof(float));

  // Reading either side again while synced copies nothing.
  s.device(0);
  s.host();
  CHECK(transfer_stats().to_device_count == 1);
  CHECK(transfer_stats().to_host_count == 0);

  float* dm = s.mutable_device(0);
  CHECK(s.head() == Head::kDevice);
  dm[0] = 42.0f;
  CHECK(s.host()[0] == 42.0f);
  CHECK(s.head() == Head::kSynced);
  t = transfer_stats();
  CHECK(t.to_host_count == 1);
  CHECK(t.to_host_bytes == 4 * sizeof(float));
  CHECK(fake.backend.to_host == 1);
  CHECK(fake.backend.to_device == 1);

  // A host write makes the device stale again: the next device read copies.
  s.mutable_host()[1] = -1.0f;
  CHECK(s.head() == Head::kHost);
  CHECK(s.device(0)[1] == -1.0f);
  CHECK(transfer_stats().to_device_count == 2);
  reset_transfer_stats();
  CHECK(transfer_stats().to_device_count == 0);
  CHECK(transfer_stats().to_device_bytes == 0);
}

TEST_CASE("a storage lives on one device; other ordinals and missing devices are errors", "[storage]") {
  FakeDevice fake;
  Storage s(3);
  s.device(0);
  CHECK_THROWS_AS(s.device(1), Error);
  Storage t(3);
  CHECK_THROWS_WITH(t.mutable_device(2), Catch::Contains("no device 2"));
}

TEST_CASE("storage of other element types syncs by bytes", "[storage]") {
  FakeDevice fake;
  Storage s(5, sizeof(int));
  CHECK(s.bytes() == 5 * sizeof(int));
  int* h = s.mutable_host<int>();
  for (int i = 0; i < 5; ++i) h[i] = 10 * i;
  CHECK(s.device<int>(0)[4] == 40);
  CHECK(transfer_stats().to_device_bytes == 5 * sizeof(int));
}

TEST_CASE("a host-only tensor never allocates device memory or copies", "[storage][tensor]") {
  FakeDevice fake;
  Tensor t({3, 4});
  t.set_data(2.0f);
  t.zero_diff();
  float* g = t.mutable_diff();
  g[5] = 1.0f;
  CHECK(t.data()[11] == 2.0f);
  CHECK(t.data(Device::cpu()) == t.data());
  CHECK(t.mutable_diff(Device::cpu()) == g);
  CHECK(fake.backend.allocations == 0);
  const TransferStats s = transfer_stats();
  CHECK(s.to_device_count + s.to_host_count == 0);
}

TEST_CASE("tensor views keep their arena offsets on the device", "[storage][tensor]") {
  FakeDevice fake;
  auto data = std::make_shared<Storage>(10);
  auto diff = std::make_shared<Storage>(10);
  for (int i = 0; i < 10; ++i) data->mutable_host()[i] = float(i);
  Tensor a({4}), b({6});
  a.bind(data, 0, diff, 0);
  b.bind(data, 4, diff, 4);

  const float* bd = b.data(kDev);
  CHECK(bd == data->device(0) + 4);
  CHECK(bd[0] == 4.0f);
  CHECK(transfer_stats().to_device_count == 1);  // the whole arena, once
  a.data(kDev);
  CHECK(transfer_stats().to_device_count == 1);

  // A device write through one view is seen by the host arena and by the other view's host read.
  b.mutable_diff(kDev)[2] = 7.0f;
  CHECK(diff->head() == Head::kDevice);
  CHECK(b.diff()[2] == 7.0f);
  CHECK(diff->host()[6] == 7.0f);
  CHECK(a.diff()[0] == 0.0f);

  // share_data: the sharer sees the owner's device values.
  Tensor c({6});
  c.share_data(b);
  b.mutable_data(kDev)[0] = -3.0f;
  CHECK(c.data()[0] == -3.0f);
  CHECK(c.data(kDev) == b.data(kDev));
}

TEST_CASE("without a device backend device memory is a clear error", "[storage]") {
  std::string reason;
  if (cuda_device_count(&reason) > 0) {
    WARN("a CUDA device is present; the no-device error is not reachable");
    return;
  }
  DeviceBackend* previous = set_device_backend(nullptr);
  Storage s(2);
  try {
    s.device(0);
    FAIL("device memory without a device did not throw");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK((m.find("no CUDA backend") != std::string::npos || m.find("no CUDA device") != std::string::npos ||
           m.find("CUDA") != std::string::npos));
  }
  CHECK(s.head() == Head::kUninitialized);
  set_device_backend(previous);
}
