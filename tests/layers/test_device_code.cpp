// Every layer's device code (forward_cuda / backward_cuda: the code that runs on a GPU) run on the
// host against its CPU path, for every case in tests/cases/ (tests/support/device_cases.hpp). The
// same cases run on a real GPU in dsg_gpu_tests.
#include <catch2/catch.hpp>

#include <set>

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

TEST_CASE("device cases have unique names", "[device_code]") {
  std::set<std::string> names;
  for (const test::DeviceCase& c : test::device_cases()) {
    INFO(c.name);
    CHECK(names.insert(c.name).second);
  }
}
