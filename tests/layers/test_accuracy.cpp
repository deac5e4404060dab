#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter accuracy_param(int top_k) {
  LayerParameter p;
  p.set_name("acc");
  p.set_type("Accuracy");
  p.mutable_accuracy_param()->set_top_k(top_k);
  return p;
}

// Four samples, five classes. True class ranks: 1st, 3rd, 4th, 1st.
static void fill_example(Tensor& x, Tensor& label) {
  x.reshape({4, 5});
  label.reshape({4});
  const float v[] = {0.1f, 0.5f, 0.2f, 0.9f, 0.3f,   // label 3
                     0.8f, 0.1f, 0.6f, 0.3f, 0.7f,   // label 2
                     0.2f, 0.4f, 0.1f, 0.3f, 0.5f,   // label 0
                     0.3f, 0.9f, 0.2f, 0.1f, 0.4f};  // label 1
  for (int i = 0; i < 20; ++i) x.mutable_data()[i] = v[i];
  const float l[] = {3, 2, 0, 1};
  for (int i = 0; i < 4; ++i) label.mutable_data()[i] = l[i];
}

TEST_CASE("Accuracy top-1 with per-class accuracy", "[layer][accuracy]") {
  auto layer = create_layer(accuracy_param(1));
  Tensor x, label, acc, per_class;
  fill_example(x, label);
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&acc, &per_class}, rng);
  CHECK(layer->loss_weight(0) == 0.0f);
  layer->forward({&x, &label}, {&acc, &per_class}, Context{});
  REQUIRE(acc.count() == 1);
  CHECK(acc.data()[0] == Approx(0.5f));
  REQUIRE(per_class.shape() == std::vector<int>{5});
  const float expect[] = {0, 1, 0, 1, 0};
  for (int c = 0; c < 5; ++c) CHECK(per_class.data()[c] == Approx(expect[c]));
}

TEST_CASE("Accuracy top-3", "[layer][accuracy]") {
  auto layer = create_layer(accuracy_param(3));
  Tensor x, label, acc;
  fill_example(x, label);
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&acc}, rng);
  layer->forward({&x, &label}, {&acc}, Context{});
  CHECK(acc.data()[0] == Approx(0.75f));
}

TEST_CASE("Accuracy counts ties against the true class and skips ignore_label", "[layer][accuracy]") {
  auto p = accuracy_param(1);
  p.mutable_accuracy_param()->set_ignore_label(7);
  auto layer = create_layer(p);
  Tensor x, label, acc;
  fill_example(x, label);
  for (int c = 0; c < 5; ++c) x.mutable_data()[c] = 1.0f;  // sample 0: all tied
  label.mutable_data()[1] = 7;                             // sample 1 ignored
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&acc}, rng);
  layer->forward({&x, &label}, {&acc}, Context{});
  CHECK(acc.data()[0] == Approx(1.0f / 3));  // samples 0 (tie) and 2 miss, 3 hits
}

TEST_CASE("Accuracy has no gradient", "[layer][accuracy][gradient]") {
  auto layer = create_layer(accuracy_param(1));
  Tensor x, label, acc;
  fill_example(x, label);
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&acc}, rng);
  CHECK_FALSE(layer->allow_backward_to(0));
  CHECK_FALSE(layer->allow_backward_to(1));
  x.zero_diff();
  layer->forward({&x, &label}, {&acc}, Context{});
  acc.mutable_diff()[0] = 1.0f;
  layer->backward({&acc}, {false, false}, {&x, &label}, Context{});
  CHECK(x.sumsq_diff() == 0.0);
  test::check_layer_gradient(*layer, {&x, &label}, {&acc}, Context{});  // nothing to check: no targets
}

TEST_CASE("Accuracy rejects bad top_k, labels and label counts", "[layer][accuracy]") {
  Tensor x, label, acc;
  fill_example(x, label);
  std::mt19937_64 rng(1);
  REQUIRE_THROWS_AS(create_layer(accuracy_param(6))->setup({&x, &label}, {&acc}, rng), dsg::Error);
  auto layer = create_layer(accuracy_param(1));
  layer->setup({&x, &label}, {&acc}, rng);
  label.mutable_data()[0] = 5;
  REQUIRE_THROWS_AS(layer->forward({&x, &label}, {&acc}, Context{}), dsg::Error);
  Tensor few({3});
  REQUIRE_THROWS_AS(layer->forward({&x, &few}, {&acc}, Context{}), dsg::Error);
}
