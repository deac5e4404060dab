#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter loss_param() {
  LayerParameter p;
  p.set_name("loss");
  p.set_type("SoftmaxWithLoss");
  return p;
}

// Two samples, three classes: scores {1, 2, 3} (label 2) and {0, 0, 0} (label 0).
static void fill_example(Tensor& x, Tensor& label) {
  x.reshape({2, 3});
  label.reshape({2});
  const float v[] = {1, 2, 3, 0, 0, 0};
  for (int i = 0; i < 6; ++i) x.mutable_data()[i] = v[i];
  label.mutable_data()[0] = 2;
  label.mutable_data()[1] = 0;
}

static const double kLoss0 = -std::log(0.6652409557748219);  // -log softmax({1,2,3})[2]
static const double kLoss1 = std::log(3.0);                  // -log(1/3)

TEST_CASE("SoftmaxWithLoss value matches the hand-computed loss", "[layer][softmax_loss]") {
  auto layer = create_layer(loss_param());
  Tensor x, label, loss;
  fill_example(x, label);
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&loss}, rng);
  REQUIRE(layer->loss_weight(0) == 1.0f);
  REQUIRE_FALSE(layer->allow_backward_to(1));
  const float weighted = layer->forward({&x, &label}, {&loss}, Context{});
  REQUIRE(loss.count() == 1);
  CHECK(loss.data()[0] == Approx((kLoss0 + kLoss1) / 2));
  CHECK(weighted == Approx((kLoss0 + kLoss1) / 2));

  // Backward: (p - onehot) * top diff / 2.
  loss.mutable_diff()[0] = 2.0f;
  layer->backward({&loss}, {true, false}, {&x, &label}, Context{});
  CHECK(x.diff()[0] == Approx(0.0900305732f));
  CHECK(x.diff()[2] == Approx(0.6652409558f - 1));
  CHECK(x.diff()[3] == Approx(1.0f / 3 - 1));
  CHECK(x.diff()[4] == Approx(1.0f / 3));
}

TEST_CASE("SoftmaxWithLoss ignore_label and normalization modes", "[layer][softmax_loss]") {
  Tensor x, label, loss;
  fill_example(x, label);
  label.mutable_data()[1] = -1;  // ignored below
  struct Case { LossParameter::NormalizationMode mode; double divisor; };
  for (Case c : {Case{LossParameter::VALID, 1}, Case{LossParameter::FULL, 2}, Case{LossParameter::BATCH_SIZE, 2},
                 Case{LossParameter::NONE, 1}}) {
    auto p = loss_param();
    p.mutable_loss_param()->set_ignore_label(-1);
    p.mutable_loss_param()->set_normalization(c.mode);
    auto layer = create_layer(p);
    std::mt19937_64 rng(1);
    layer->setup({&x, &label}, {&loss}, rng);
    layer->forward({&x, &label}, {&loss}, Context{});
    CHECK(loss.data()[0] == Approx(kLoss0 / c.divisor));
    loss.mutable_diff()[0] = 1.0f;
    layer->backward({&loss}, {true, false}, {&x, &label}, Context{});
    CHECK(x.diff()[3] == 0.0f);  // the ignored sample gets no gradient
    CHECK(x.diff()[2] == Approx((0.6652409558 - 1) / c.divisor));
  }
}

TEST_CASE("SoftmaxWithLoss over spatial positions with a second top", "[layer][softmax_loss]") {
  auto layer = create_layer(loss_param());
  Tensor x({1, 2, 2}), label({1, 2}), loss, prob;
  const float v[] = {0, 0, 0, std::log(3.0f)};  // position 0: {0, 0}; position 1: {0, ln 3}
  for (int i = 0; i < 4; ++i) x.mutable_data()[i] = v[i];
  label.mutable_data()[0] = 1;
  label.mutable_data()[1] = 1;
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&loss, &prob}, rng);
  REQUIRE(layer->loss_weight(1) == 0.0f);
  layer->forward({&x, &label}, {&loss, &prob}, Context{});
  CHECK(loss.data()[0] == Approx((std::log(2.0) - std::log(0.75)) / 2));
  CHECK(prob.data()[3] == Approx(0.75f));
}

TEST_CASE("SoftmaxWithLoss gradient check", "[layer][softmax_loss][gradient]") {
  auto layer = create_layer(loss_param());
  Tensor x({4, 5, 2}), label({4, 2}), loss;
  test::fill_uniform(x, -2, 2, 3);
  for (int i = 0; i < 8; ++i) label.mutable_data()[i] = float((i * 3) % 5);
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&loss}, rng);
  test::GradientCheckOptions opt;
  opt.bottoms = {0};
  test::check_layer_gradient(*layer, {&x, &label}, {&loss}, Context{}, opt);
}

TEST_CASE("SoftmaxWithLoss rejects labels out of range and mismatched label counts", "[layer][softmax_loss]") {
  auto layer = create_layer(loss_param());
  Tensor x, label, loss;
  fill_example(x, label);
  label.mutable_data()[1] = 3;
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&loss}, rng);
  REQUIRE_THROWS_AS(layer->forward({&x, &label}, {&loss}, Context{}), dsg::Error);
  try {
    layer->forward({&x, &label}, {&loss}, Context{});
  } catch (const dsg::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("'loss'") != std::string::npos);
    CHECK(msg.find("label 3") != std::string::npos);
    CHECK(msg.find("C = 3") != std::string::npos);
  }
  label.mutable_data()[1] = -1;  // no ignore_label configured
  REQUIRE_THROWS_AS(layer->forward({&x, &label}, {&loss}, Context{}), dsg::Error);
  Tensor three({3});
  REQUIRE_THROWS_AS(layer->forward({&x, &three}, {&loss}, Context{}), dsg::Error);
}
