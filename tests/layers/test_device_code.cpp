// Every layer's device code (forward_cuda / backward_cuda: the code that runs on a GPU) run on the
// host against its CPU path, for every case in tests/cases/ (tests/support/device_cases.hpp). The
// same cases run on a real GPU in dsg_gpu_tests. On a SimulatedDevice (separate "device" buffers on
// the host, every copy counted) they also show that the device code copies nothing to or from the
// host inside a pass.
#include <catch2/catch.hpp>

#include <set>

#include "runtime/simulated_device.hpp"
#include "support/device_cases.hpp"

using namespace dsg;

TEST_CASE("every layer's device code, run on the host, matches its CPU path", "[device_code]") {
  REQUIRE(!test::device_cases().empty());
  Context target;
  target.device_code_on_host = true;
  for (const test::DeviceCase& c : test::device_cases()) {
    DYNAMIC_SECTION(c.name) { test::run_device_case(c, target); }
  }
}

TEST_CASE("every layer's device code keeps its data on the device (simulated device)", "[device_code][transfers]") {
  Context target;
  target.device = Device::cuda(0);
  for (const test::DeviceCase& c : test::device_cases()) {
    DYNAMIC_SECTION(c.name) {
      SimulatedDevice sim;  // device memory apart from the host copies; every copy counted
      test::run_device_case(c, target, /*check_copies=*/true);
    }
  }
}

TEST_CASE("device cases have unique names", "[device_code]") {
  std::set<std::string> names;
  for (const test::DeviceCase& c : test::device_cases()) {
    INFO(c.name);
    CHECK(names.insert(c.name).second);
  }
}
