#include <catch2/catch.hpp>

#include <iterator>

#include "datasets/source.hpp"
#include "datasets/synthetic_data.hpp"

using namespace dsg;
using namespace dsg::test;

static DataParameter idx_param(const std::string& source) {
  DataParameter p;
  p.set_backend(DataParameter::IDX);
  p.set_source(source);
  p.set_batch_size(4);
  return p;
}

static void check_synthetic(const DataSource& s, int64_t n, int h, int w) {
  REQUIRE(s.size() == n);
  REQUIRE(s.sample_shape() == std::vector<int>{1, h, w});
  for (int64_t i = 0; i < n; ++i) {
    CHECK(s.label(i) == synth_label(i));
    const uint8_t* px = s.pixels(i);
    for (int p = 0; p < h * w; ++p) {
      if (px[p] != synth_pixel(i, p)) FAIL("pixel " << p << " of sample " << i << " differs");
    }
  }
}

TEST_CASE("IDX reads raw and gzipped files exactly", "[data][idx]") {
  TempDir dir;
  for (bool gzip : {false, true}) {
    const std::string images = write_idx_pair(dir, gzip ? "gz" : "raw", 300, 5, 7, gzip);
    auto s = create_data_source(idx_param(images), TRAIN);
    check_synthetic(*s, 300, 5, 7);
    CHECK(s->num_classes() == 10);  // labels (3 i) % 10 cover 0..9
    CHECK(s->description().find(images) != std::string::npos);
  }
}

TEST_CASE("IDX num_classes is max label + 1 and label_source overrides the derived name", "[data][idx]") {
  TempDir dir;
  write_bytes(dir.file("a.images.idx3"), idx_images(3, 2, 2));
  write_bytes(dir.file("a.labels.idx1"), idx_labels({0, 200, 4}));
  auto s = create_data_source(idx_param(dir.file("a.images.idx3")), TEST);  // derived "labels.idx1"
  CHECK(s->num_classes() == 201);
  CHECK(s->label(1) == 200);

  write_bytes(dir.file("other-labels"), idx_labels({1, 2, 3}));
  DataParameter p = idx_param(dir.file("a.images.idx3"));
  p.set_label_source(dir.file("other-labels"));
  auto t = create_data_source(p, TEST);
  CHECK(t->label(0) == 1);
  CHECK(t->num_classes() == 4);
}

TEST_CASE("IDX errors name the file and say what is wrong", "[data][idx]") {
  TempDir dir;
  const std::string images = write_idx_pair(dir, "ok", 10, 3, 3);
  const std::string labels = dir.file("ok-labels-idx1-ubyte");

  SECTION("missing images file") {
    const std::string missing = dir.file("train-images-idx3-ubyte.gz");
    std::string err = error_text([&] { create_data_source(idx_param(missing), TRAIN); });
    CHECK(err.find(missing) != std::string::npos);
    CHECK(err.find("dataset-fashion-mnist") != std::string::npos);
    CHECK(err.find("--data") != std::string::npos);
  }
  SECTION("missing labels file") {
    write_bytes(dir.file("lonely-images-idx3-ubyte"), idx_images(2, 2, 2));
    std::string err = error_text([&] { create_data_source(idx_param(dir.file("lonely-images-idx3-ubyte")), TRAIN); });
    CHECK(err.find(dir.file("lonely-labels-idx1-ubyte")) != std::string::npos);
    CHECK(err.find("dataset-fashion-mnist") != std::string::npos);
  }
  SECTION("labels file name cannot be derived") {
    write_bytes(dir.file("pictures"), idx_images(2, 2, 2));
    CHECK(error_text([&] { create_data_source(idx_param(dir.file("pictures")), TRAIN); }).find("label_source") !=
          std::string::npos);
  }
  SECTION("wrong magic") {
    DataParameter p = idx_param(labels);  // a labels file given as images
    p.set_label_source(labels);
    std::string err = error_text([&] { create_data_source(p, TRAIN); });
    CHECK(err.find("not an IDX images file") != std::string::npos);
    CHECK(err.find(labels) != std::string::npos);
  }
  SECTION("truncated images") {
    std::vector<uint8_t> b = idx_images(10, 3, 3);
    b.resize(b.size() - 5);
    write_bytes(images, b);
    std::string err = error_text([&] { create_data_source(idx_param(images), TRAIN); });
    CHECK(err.find("truncated") != std::string::npos);
    CHECK(err.find("expected 106 bytes, got 101") != std::string::npos);
    CHECK(err.find(images) != std::string::npos);
  }
  SECTION("truncated header") {
    write_bytes(images, {0, 0, 8, 3, 0, 0});
    CHECK(error_text([&] { create_data_source(idx_param(images), TRAIN); }).find("truncated") != std::string::npos);
  }
  SECTION("truncated labels") {
    std::vector<uint8_t> b = idx_labels(std::vector<uint8_t>(10, 1));
    b.pop_back();
    write_bytes(labels, b);
    std::string err = error_text([&] { create_data_source(idx_param(images), TRAIN); });
    CHECK(err.find("labels") != std::string::npos);
    CHECK(err.find("expected 18 bytes, got 17") != std::string::npos);
    CHECK(err.find(labels) != std::string::npos);
  }
  SECTION("truncated gzip stream") {
    const std::string gz = write_idx_pair(dir, "cut", 50, 10, 10, true);
    std::vector<uint8_t> all;
    {
      std::ifstream in(gz, std::ios::binary);
      all.assign(std::istreambuf_iterator<char>(in), {});
    }
    all.resize(all.size() / 2);
    write_bytes(gz, all);
    std::string err = error_text([&] { create_data_source(idx_param(gz), TRAIN); });
    CHECK(err.find(gz) != std::string::npos);
  }
  SECTION("count mismatch") {
    write_bytes(labels, idx_labels(std::vector<uint8_t>(9, 1)));
    std::string err = error_text([&] { create_data_source(idx_param(images), TRAIN); });
    CHECK(err.find("mismatch") != std::string::npos);
    CHECK(err.find("10 images") != std::string::npos);
    CHECK(err.find("9 labels") != std::string::npos);
  }
  SECTION("LMDB and LevelDB backends") {
    DataParameter p = idx_param(images);
    p.set_backend(DataParameter::LMDB);
    std::string err = error_text([&] { create_data_source(p, TRAIN); });
    CHECK(err.find("not supported") != std::string::npos);
    CHECK(err.find("IDX") != std::string::npos);
    p.clear_backend();  // Caffe's default, LEVELDB
    CHECK(error_text([&] { create_data_source(p, TRAIN); }).find("LevelDB") != std::string::npos);
  }
  SECTION("empty source") {
    CHECK(error_text([&] { create_data_source(idx_param(""), TRAIN); }).find("source is empty") !=
          std::string::npos);
  }
}

TEST_CASE("the dataset registry lists the readers", "[data][idx]") {
  CHECK(data_source_registry().has("IDX"));
  CHECK(data_source_registry().has("CIFAR10"));
  CHECK(data_source_registry().has("CIFAR100"));
}

TEST_CASE("real Fashion-MNIST files", "[data][idx][fashion]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) {
    WARN("skipped: " << dir << " not found (apt-get install dataset-fashion-mnist)");
    return;
  }
  auto train = create_data_source(idx_param(dir + "/train-images-idx3-ubyte.gz"), TRAIN);
  CHECK(train->size() == 60000);
  CHECK(train->sample_shape() == std::vector<int>{1, 28, 28});
  CHECK(train->num_classes() == 10);
  CHECK(train->label(0) == 9);
  auto test = create_data_source(idx_param(dir + "/t10k-images-idx3-ubyte.gz"), TEST);
  CHECK(test->size() == 10000);
  CHECK(test->num_classes() == 10);
}
