#include <catch2/catch.hpp>

#include "datasets/source.hpp"
#include "datasets/synthetic_data.hpp"

using namespace dsg;
using namespace dsg::test;

static DataParameter cifar_param(DataParameter::DB backend, const std::string& dir) {
  DataParameter p;
  p.set_backend(backend);
  p.set_source(dir);
  p.set_batch_size(4);
  return p;
}

// CIFAR-10 layout with `per_batch` records in each of the five training batches and 7 test records.
static void write_cifar10(const TempDir& dir, int per_batch) {
  for (int b = 1; b <= 5; ++b)
    write_bytes(dir.file("data_batch_" + std::to_string(b) + ".bin"), cifar_records((b - 1) * per_batch, per_batch, 1));
  write_bytes(dir.file("test_batch.bin"), cifar_records(1000, 7, 1));
}

static void check_pixels(const DataSource& s, int64_t i, int64_t id) {
  const uint8_t* px = s.pixels(i);
  for (int p = 0; p < 3072; ++p)
    if (px[p] != synth_pixel(id, p)) FAIL("pixel " << p << " of sample " << i << " differs");
}

TEST_CASE("CIFAR-10 reads the five training batches in order and the test batch", "[data][cifar]") {
  TempDir dir;
  write_cifar10(dir, 3);
  auto train = create_data_source(cifar_param(DataParameter::CIFAR10, dir.path().string()), TRAIN);
  REQUIRE(train->size() == 15);
  CHECK(train->sample_shape() == std::vector<int>{3, 32, 32});
  CHECK(train->num_classes() == 10);
  for (int64_t i = 0; i < 15; ++i) {
    CHECK(train->label(i) == i % 10);
    check_pixels(*train, i, i);
  }
  auto test = create_data_source(cifar_param(DataParameter::CIFAR10, dir.path().string()), TEST);
  REQUIRE(test->size() == 7);
  for (int64_t i = 0; i < 7; ++i) {
    CHECK(test->label(i) == (1000 + i) % 10);
    check_pixels(*test, i, 1000 + i);
  }
}

TEST_CASE("CIFAR-100 fine and coarse labels", "[data][cifar]") {
  TempDir dir;
  write_bytes(dir.file("train.bin"), cifar_records(0, 6, 2));
  write_bytes(dir.file("test.bin"), cifar_records(50, 4, 2));
  DataParameter p = cifar_param(DataParameter::CIFAR100, dir.path().string());
  auto fine = create_data_source(p, TRAIN);
  REQUIRE(fine->size() == 6);
  CHECK(fine->num_classes() == 100);
  for (int64_t i = 0; i < 6; ++i) {
    CHECK(fine->label(i) == (i * 7) % 100);
    check_pixels(*fine, i, i);
  }
  p.set_coarse_labels(true);
  auto coarse = create_data_source(p, TEST);
  REQUIRE(coarse->size() == 4);
  CHECK(coarse->num_classes() == 20);
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(coarse->label(i) == (50 + i) % 20);
    check_pixels(*coarse, i, 50 + i);
  }
}

TEST_CASE("CIFAR errors", "[data][cifar]") {
  TempDir dir;
  const std::string d = dir.path().string();
  SECTION("missing files name the directory, the files and the download") {
    write_bytes(dir.file("data_batch_1.bin"), cifar_records(0, 2, 1));
    std::string err = error_text([&] { create_data_source(cifar_param(DataParameter::CIFAR10, d), TRAIN); });
    CHECK(err.find(d) != std::string::npos);
    CHECK(err.find("data_batch_2.bin") != std::string::npos);
    CHECK(err.find("data_batch_5.bin") != std::string::npos);
    CHECK(err.find("cifar-10-binary.tar.gz") != std::string::npos);
    CHECK(err.find("https://www.cs.toronto.edu/~kriz/cifar.html") != std::string::npos);
    CHECK(err.find("cifar-10-batches-bin") != std::string::npos);
    err = error_text([&] { create_data_source(cifar_param(DataParameter::CIFAR10, d), TEST); });
    CHECK(err.find("test_batch.bin") != std::string::npos);
    err = error_text([&] { create_data_source(cifar_param(DataParameter::CIFAR100, d), TRAIN); });
    CHECK(err.find("train.bin") != std::string::npos);
    CHECK(err.find("cifar-100-binary.tar.gz") != std::string::npos);
  }
  SECTION("file size not a multiple of the record size") {
    std::vector<uint8_t> b = cifar_records(0, 2, 1);
    b.pop_back();
    write_bytes(dir.file("test_batch.bin"), b);
    std::string err = error_text([&] { create_data_source(cifar_param(DataParameter::CIFAR10, d), TEST); });
    CHECK(err.find(dir.file("test_batch.bin")) != std::string::npos);
    CHECK(err.find("6145 bytes") != std::string::npos);
    CHECK(err.find("3073-byte record") != std::string::npos);
  }
  SECTION("CIFAR-100 record size") {
    write_bytes(dir.file("test.bin"), cifar_records(0, 3, 1));  // CIFAR-10 records: 3 * 3073 bytes
    std::string err = error_text([&] { create_data_source(cifar_param(DataParameter::CIFAR100, d), TEST); });
    CHECK(err.find("3074-byte record") != std::string::npos);
  }
  SECTION("label out of range") {
    std::vector<uint8_t> b = cifar_records(0, 2, 1);
    b[3073] = 10;
    write_bytes(dir.file("test_batch.bin"), b);
    std::string err = error_text([&] { create_data_source(cifar_param(DataParameter::CIFAR10, d), TEST); });
    CHECK(err.find("label 10") != std::string::npos);
  }
}
