#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "datasets/data_layer.hpp"
#include "datasets/data_paths.hpp"
#include "datasets/synthetic_data.hpp"

using namespace dsg;
using namespace dsg::test;

static LayerParameter layer_param(const std::string& source, int batch, Phase phase,
                                  DataParameter::DB backend = DataParameter::IDX) {
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

// A set-up Data layer with its two tops.
struct Feed {
  explicit Feed(const LayerParameter& p) : layer(create_layer(p)) {
    std::mt19937_64 rng(1);
    layer->setup({}, {&data, &label}, rng);
  }
  DataLayer& dl() { return dynamic_cast<DataLayer&>(*layer); }
  // Forwards one batch and returns the synthetic ids of its samples (scale 1, no mean, no crop),
  // checking each label against the id.
  std::vector<int64_t> next_ids(uint64_t seed) {
    Context ctx;
    ctx.seed = seed;
    layer->forward({}, {&data, &label}, ctx);
    const int64_t n = data.shape(0), sample = data.count(1);
    std::vector<int64_t> ids;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t id = int64_t(data.data()[j * sample]) + 256 * int64_t(data.data()[j * sample + 1]);
      CHECK(label.data()[j] == float(synth_label(id)));
      ids.push_back(id);
    }
    return ids;
  }
  std::unique_ptr<Layer> layer;
  Tensor data, label;
};

TEST_CASE("Data layer: shapes, sequential TEST order, labels, scale and mean", "[data][layer]") {
  TempDir dir;
  LayerParameter p = layer_param(write_idx_pair(dir, "t", 10, 4, 5), 4, TEST);
  p.mutable_transform_param()->set_scale(0.5f);
  p.mutable_transform_param()->add_mean_value(3.0f);
  Feed f(p);
  CHECK(f.dl().dataset_size() == 10);
  CHECK(f.dl().batch_size() == 4);
  CHECK(f.dl().source().num_classes() == 10);
  CHECK(f.layer->is_data_layer());
  CHECK_FALSE(f.layer->allow_backward_to(0));
  REQUIRE(f.data.shape() == std::vector<int>{4, 1, 4, 5});
  REQUIRE(f.label.shape() == std::vector<int>{4});
  const int64_t expected[3][4] = {{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 0, 1}};
  for (const auto& batch : expected) {
    f.layer->forward({}, {&f.data, &f.label}, Context{});
    for (int j = 0; j < 4; ++j) {
      CHECK(f.label.data()[j] == float(synth_label(batch[j])));
      for (int q = 0; q < 20; ++q)
        if (f.data.data()[j * 20 + q] != (float(synth_pixel(batch[j], q)) - 3.0f) * 0.5f)
          FAIL("value " << q << " of sample " << j << " differs");
    }
  }
}

TEST_CASE("Data layer: per-channel mean and center crop on CIFAR in TEST", "[data][layer]") {
  TempDir dir;
  write_bytes(dir.file("test_batch.bin"), cifar_records(0, 3, 1));
  LayerParameter p = layer_param(dir.path().string(), 2, TEST, DataParameter::CIFAR10);
  for (float m : {1.0f, 2.0f, 3.0f}) p.mutable_transform_param()->add_mean_value(m);
  p.mutable_transform_param()->set_crop_size(28);
  p.mutable_transform_param()->set_mirror(true);  // TEST never mirrors
  Feed f(p);
  REQUIRE(f.data.shape() == std::vector<int>{2, 3, 28, 28});
  f.layer->forward({}, {&f.data, &f.label}, Context{});
  for (int j = 0; j < 2; ++j)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 28; ++y)
        for (int x = 0; x < 28; ++x) {
          const float want = float(synth_pixel(j, c * 1024 + (y + 2) * 32 + x + 2)) - float(c + 1);
          if (f.data.data()[((j * 3 + c) * 28 + y) * 28 + x] != want) FAIL("mismatch at " << j << c << y << x);
        }
  CHECK(f.label.data()[1] == 1.0f);
}

TEST_CASE("Data layer: TRAIN shuffle is a fresh permutation every epoch", "[data][layer]") {
  TempDir dir;
  Feed f(layer_param(write_idx_pair(dir, "s", 10, 2, 2), 4, TRAIN));
  std::vector<int64_t> stream;
  for (int b = 0; b < 10; ++b) {
    auto ids = f.next_ids(7);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 4; ++e) {
    std::vector<int64_t> order(stream.begin() + e * 10, stream.begin() + (e + 1) * 10);
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 10; ++i) CHECK(sorted[i] == i);  // every sample exactly once
    epochs.push_back(order);
  }
  CHECK(epochs[0] != epochs[1]);
  CHECK(epochs[1] != epochs[2]);
  std::vector<int64_t> identity = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  CHECK((epochs[0] != identity || epochs[1] != identity));

  LayerParameter p = layer_param(dir.file("s-images-idx3-ubyte"), 4, TRAIN);
  p.mutable_data_param()->set_shuffle(false);
  Feed g(p);
  CHECK(g.next_ids(7) == std::vector<int64_t>{0, 1, 2, 3});
}

TEST_CASE("Data layer: same seed gives the same stream, seek reproduces it", "[data][layer]") {
  TempDir dir;
  const LayerParameter p = layer_param(write_idx_pair(dir, "d", 23, 3, 3), 5, TRAIN);
  Feed a(p), b(p), c(p);
  std::vector<std::vector<int64_t>> run_a;
  for (int i = 0; i < 12; ++i) run_a.push_back(a.next_ids(42));
  bool differs = false;
  for (int i = 0; i < 12; ++i) {
    CHECK(b.next_ids(42) == run_a[i]);
    differs = differs || c.next_ids(43) != run_a[i];
  }
  CHECK(differs);

  Feed r(p);
  r.dl().seek(7);  // before the first forward
  for (int i = 7; i < 12; ++i) CHECK(r.next_ids(42) == run_a[i]);
  CHECK(r.dl().next_batch() == 12);
  r.dl().seek(2);  // backwards, after forwards
  CHECK(r.next_ids(42) == run_a[2]);
  CHECK(r.next_ids(42) == run_a[3]);
  a.dl().seek(9);
  CHECK(a.next_ids(42) == run_a[9]);

  // A new seed restarts the prefetch: batch 4 under seed 43 matches a fresh run under 43.
  Feed s(p), t(p);
  for (int i = 0; i < 4; ++i) s.next_ids(42);
  for (int i = 0; i < 4; ++i) t.next_ids(43);
  CHECK(s.next_ids(43) == t.next_ids(43));
}

TEST_CASE("Data layer: random crop and mirror in TRAIN, deterministic per seed", "[data][layer]") {
  TempDir dir;
  const int n = 40, side = 6, crop = 3;
  LayerParameter p = layer_param(write_idx_pair(dir, "c", n, side, side), 8, TRAIN);
  p.mutable_data_param()->set_shuffle(false);
  p.mutable_transform_param()->set_crop_size(crop);
  p.mutable_transform_param()->set_mirror(true);
  Feed f(p), g(p);
  REQUIRE(f.data.shape() == std::vector<int>{8, 1, crop, crop});
  std::set<int> offsets;
  int flips = 0, total = 0;
  for (int b = 0; b < 10; ++b) {
    Context ctx;
    ctx.seed = 5;
    f.layer->forward({}, {&f.data, &f.label}, ctx);
    g.layer->forward({}, {&g.data, &g.label}, ctx);
    for (int j = 0; j < 8; ++j) {
      const int64_t id = (b * 8 + j) % n;
      const float* out = f.data.data() + j * crop * crop;
      bool found = false;
      for (int h = 0; h <= side - crop && !found; ++h)
        for (int w = 0; w <= side - crop && !found; ++w)
          for (int flip = 0; flip < 2 && !found; ++flip) {
            bool same = true;
            for (int y = 0; y < crop && same; ++y)
              for (int x = 0; x < crop && same; ++x) {
                const int sx = flip ? w + crop - 1 - x : w + x;
                same = out[y * crop + x] == float(synth_pixel(id, (h + y) * side + sx));
              }
            if (same) {
              found = true;
              offsets.insert(h * side + w);
              flips += flip;
            }
          }
      CHECK(found);
      ++total;
    }
    for (int64_t i = 0; i < f.data.count(); ++i)
      if (f.data.data()[i] != g.data.data()[i]) FAIL("two layers with the same seed differ");
  }
  CHECK(offsets.size() > 4);
  CHECK(flips > total / 5);
  CHECK(flips < total * 4 / 5);
}

TEST_CASE("Data layer: configuration errors", "[data][layer]") {
  TempDir dir;
  const std::string images = write_idx_pair(dir, "e", 4, 3, 3);
  auto setup_error = [](const LayerParameter& p) {
    return error_text([&] {
      auto layer = create_layer(p);
      Tensor data, label;
      std::mt19937_64 rng(1);
      layer->setup({}, {&data, &label}, rng);
    });
  };
  LayerParameter p = layer_param(images, 0, TRAIN);
  CHECK(setup_error(p).find("batch_size") != std::string::npos);
  p.mutable_data_param()->clear_batch_size();
  CHECK(setup_error(p).find("batch_size") != std::string::npos);

  p = layer_param(images, 2, TRAIN);
  p.mutable_data_param()->set_backend(DataParameter::LMDB);
  std::string err = setup_error(p);
  CHECK(err.find("layer 'data'") != std::string::npos);
  CHECK(err.find("LMDB") != std::string::npos);

  p = layer_param(dir.file("nothere-images-idx3-ubyte"), 2, TRAIN);
  err = setup_error(p);
  CHECK(err.find(dir.file("nothere-images-idx3-ubyte")) != std::string::npos);
  CHECK(err.find("dataset-fashion-mnist") != std::string::npos);

  p = layer_param(images, 2, TRAIN);
  p.mutable_transform_param()->set_mean_file("mean.binaryproto");
  CHECK(setup_error(p).find("mean_file") != std::string::npos);

  p = layer_param(images, 2, TRAIN);
  p.mutable_transform_param()->add_mean_value(1);
  p.mutable_transform_param()->add_mean_value(2);
  CHECK(setup_error(p).find("mean_value") != std::string::npos);

  p = layer_param(images, 2, TRAIN);
  p.mutable_transform_param()->set_crop_size(4);
  CHECK(setup_error(p).find("crop_size") != std::string::npos);

  p = layer_param(images, 2, TRAIN);
  p.mutable_data_param()->set_scale(0.1f);
  CHECK(setup_error(p).find("transform_param") != std::string::npos);

  auto layer = create_layer(layer_param(images, 2, TRAIN));
  std::mt19937_64 rng(1);
  CHECK(error_text([&] { layer->setup({}, {}, rng); }).find("top") != std::string::npos);
}

TEST_CASE("Data layer: a single data top", "[data][layer]") {
  TempDir dir;
  auto layer = create_layer(layer_param(write_idx_pair(dir, "o", 5, 2, 2), 3, TEST));
  Tensor data;
  std::mt19937_64 rng(1);
  layer->setup({}, {&data}, rng);
  layer->forward({}, {&data}, Context{});
  REQUIRE(data.shape() == std::vector<int>{3, 1, 2, 2});
  CHECK(data.data()[4] == float(synth_pixel(1, 0)));
}

TEST_CASE("resolve_data_sources: config-relative paths and the --data override", "[data][paths]") {
  NetParameter net;
  LayerParameter* idx = net.add_layer();
  *idx = layer_param("sub/train-images-idx3-ubyte", 4, TRAIN);
  idx->mutable_data_param()->set_label_source("sub/train-labels-idx1-ubyte");
  LayerParameter* cifar = net.add_layer();
  *cifar = layer_param("cifar", 4, TEST, DataParameter::CIFAR10);
  LayerParameter* abs = net.add_layer();
  *abs = layer_param("/abs/x-images-idx3-ubyte", 4, TEST);
  LayerParameter* relu = net.add_layer();
  relu->set_type("ReLU");
  relu->mutable_data_param()->set_source("untouched");

  NetParameter a = net;
  resolve_data_sources(a, "/cfg/dir", "");
  CHECK(a.layer(0).data_param().source() == "/cfg/dir/sub/train-images-idx3-ubyte");
  CHECK(a.layer(0).data_param().label_source() == "/cfg/dir/sub/train-labels-idx1-ubyte");
  CHECK(a.layer(1).data_param().source() == "/cfg/dir/cifar");
  CHECK(a.layer(2).data_param().source() == "/abs/x-images-idx3-ubyte");
  CHECK(a.layer(3).data_param().source() == "untouched");

  TempDir dir;
  write_idx_pair(dir, "train", 6, 2, 2);
  const std::string d = dir.path().string();
  NetParameter b = net;
  resolve_data_sources(b, "/cfg/dir", d + "/");
  CHECK(b.layer(0).data_param().source() == d + "/train-images-idx3-ubyte");
  CHECK(b.layer(0).data_param().label_source() == d + "/train-labels-idx1-ubyte");
  CHECK(b.layer(1).data_param().source() == d);
  CHECK(b.layer(2).data_param().source() == d + "/x-images-idx3-ubyte");
  CHECK(b.layer(3).data_param().source() == "untouched");

  LayerParameter lp = b.layer(0);
  lp.mutable_data_param()->set_shuffle(false);
  Feed f(lp);
  CHECK(f.dl().dataset_size() == 6);
  CHECK(f.next_ids(1) == std::vector<int64_t>{0, 1, 2, 3});
}

TEST_CASE("Data layer on the real Fashion-MNIST training set", "[data][layer][fashion]") {
  const std::string images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
  if (!fs::exists(images)) {
    WARN("skipped: " << images << " not found (apt-get install dataset-fashion-mnist)");
    return;
  }
  LayerParameter p = layer_param(images, 64, TRAIN);
  p.mutable_transform_param()->set_scale(1.0f / 255);
  auto layer = create_layer(p);
  Tensor data, label;
  std::mt19937_64 rng(1);
  layer->setup({}, {&data, &label}, rng);
  Context ctx;
  ctx.seed = 1;
  layer->forward({}, {&data, &label}, ctx);
  REQUIRE(data.shape() == std::vector<int>{64, 1, 28, 28});
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < data.count(); ++i) {
    lo = std::min(lo, data.data()[i]);
    hi = std::max(hi, data.data()[i]);
  }
  CHECK(lo >= 0.0f);
  CHECK(hi <= 1.0f);
  CHECK(hi > 0.5f);
  for (int j = 0; j < 64; ++j) CHECK((label.data()[j] >= 0 && label.data()[j] <= 9));
}
