#include "apps/training_outputs.hpp"

#include <cmath>

#include "runtime/error.hpp"
#include "runtime/net.hpp"

namespace dsg::apps {
namespace {

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  return strfmt("%.6g", v);
}

// Layer and output names come from the config; JSON needs quotes and backslashes escaped.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += strfmt("\\u%04x", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string metrics_row(const DisplayReport& r) {
  std::string line = strfmt("{\"kind\": \"train\", \"iteration\": %d, \"epoch\": %s, \"loss\": %s, \"lr\": %s, "
                            "\"images_per_sec\": %s",
                            r.iter, json_number(r.epoch).c_str(), json_number(r.loss).c_str(),
                            json_number(r.lr).c_str(), json_number(r.images_per_sec).c_str());
  if (!r.layers.empty()) {
    line += ", \"layers\": {";
    for (size_t i = 0; i < r.layers.size(); ++i) {
      const LayerStats& s = r.layers[i];
      line += (i ? ", " : "") + json_string(s.layer) + ": {";
      std::string fields;
      if (s.sparsity >= 0) fields += "\"sparsity\": " + json_number(s.sparsity);
      if (s.bits > 0) fields += (fields.empty() ? "" : ", ") + strfmt("\"bits\": %d", s.bits);
      line += fields + "}";
    }
    line += "}";
  }
  return line + "}";
}

std::string metrics_row(const TestReport& r) {
  std::string line = strfmt("{\"kind\": \"test\", \"iteration\": %d, \"epoch\": %s, \"train_loss\": %s, \"test_loss\": %s",
                            r.iter, json_number(r.epoch).c_str(), json_number(r.train_loss).c_str(),
                            json_number(r.loss).c_str());
  for (const auto& kv : r.outputs) line += ", " + json_string(kv.first) + ": " + json_number(kv.second);
  line += ", \"images_per_sec\": " + json_number(r.images_per_sec);
  if (r.exchange_bytes_per_iter > 0) line += ", \"exchange_bytes_per_iter\": " + json_number(r.exchange_bytes_per_iter);
  const NetCost& c = r.train_cost;
  if (c.dense_forward_macs > 0)
    line += ", \"train_macs_dense\": " + json_number(c.dense_training_ops()) + ", \"train_macs\": " +
            json_number(c.training_ops()) + ", \"search_ops\": " + json_number(c.search_ops) +
            ", \"inference_macs_dense\": " + json_number(c.dense_forward_macs) + ", \"inference_macs\": " +
            json_number(c.inference_ops()) + ", \"activation_bytes\": " + json_number(c.activation_bytes()) +
            ", \"activation_zvc_bytes\": " + json_number(c.activation_zvc_bytes());
  return line + "}";
}

TrainingOutputs::TrainingOutputs(Solver& solver, const std::string& metrics_path, bool append,
                                 const std::string& tensorboard_dir)
    : solver_(solver), metrics_path_(metrics_path) {
  metrics_.open(metrics_path, append ? std::ios::app : std::ios::trunc);
  if (!metrics_) throw Error("cannot write " + metrics_path);
  if (!tensorboard_dir.empty()) events_ = std::make_unique<EventFileWriter>(tensorboard_dir);
  solver.on_display = [this](const DisplayReport& r) { display(r); };
  solver.on_test = [this](const TestReport& r) { test(r); };
}

void TrainingOutputs::display(const DisplayReport& r) {
  metrics_ << metrics_row(r) << "\n";
  metrics_.flush();
  if (!metrics_) throw Error("cannot write " + metrics_path_);
  if (!events_) return;
  events_->scalar("train/loss", r.iter, r.loss);
  events_->scalar("train/lr", r.iter, r.lr);
  events_->scalar("train/images_per_sec", r.iter, r.images_per_sec);
  for (const LayerStats& s : r.layers) {
    if (s.sparsity >= 0) events_->scalar("sparsity/" + s.layer, r.iter, s.sparsity);
    if (s.bits > 0) events_->scalar("bits/" + s.layer, r.iter, s.bits);
  }
  events_->flush();
}

void TrainingOutputs::test(const TestReport& r) {
  metrics_ << metrics_row(r) << "\n";
  metrics_.flush();
  if (!metrics_) throw Error("cannot write " + metrics_path_);
  if (!events_) return;
  for (const auto& kv : r.outputs) events_->scalar("test/" + kv.first, r.iter, kv.second);
  events_->scalar("test/total_loss", r.iter, r.loss);
  const NetCost& c = r.train_cost;
  if (c.dense_forward_macs > 0) {
    events_->scalar("cost/train_macs", r.iter, c.training_ops());
    events_->scalar("cost/train_macs_dense", r.iter, c.dense_training_ops());
    events_->scalar("cost/inference_macs", r.iter, c.inference_ops());
    events_->scalar("cost/inference_macs_dense", r.iter, c.dense_forward_macs);
  }
  // The weights as the test saw them (read to the host; tests are outside the timed passes).
  for (const LearnableParam& p : solver_.train_net().learnable_params())
    events_->histogram(strfmt("weights/%s/%d", p.layer.c_str(), p.index), r.iter, p.tensor->data(),
                       size_t(p.tensor->count()));
  events_->flush();
}

}  // namespace dsg::apps
