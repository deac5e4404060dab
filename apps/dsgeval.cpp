// dsgeval: evaluates a trained (dense, pruned or compressed) model on its test set.
//   dsgeval MODEL.dsgmodel|MODEL.dsgz [--data DIR] [--json FILE] [--threads T] [--batches N] [--sram-kib K]
//           [--sensitivity [--granularity element|filter] [--levels 0.1,0.2,...] [--csv FILE]
//                          [--max-loss 0.5]]
// (The sensitivity plot: python3 scripts/plot.py sensitivity CSV-or-JSON -o OUT.png.)
// Prints Markdown tables on stdout: accuracy (top-1, top-5, mean loss, images/s), per-class
// accuracy, confusion matrix, per-layer parameters / non-zeros / bytes / MACs / execution mode.
// A .dsgz is evaluated twice: decoded (dense weights) and with the EIE-style kernel running on the
// compressed form; both accuracies and times are shown. A cost section (MACs, memory references,
// EIE-table energy, dense vs compressed; a .dsgmodel is costed as dsgcompress would store it)
// follows. --json writes the same content as JSON (--json -: the JSON alone on stdout, instead of the
// Markdown). --sensitivity prunes each layer with weights
// (with filter granularity each Convolution / InnerProduct) alone at each level, writes a CSV and
// an SVG plot, and prints suggested sparsity_param lines; progress goes to stderr. Exit codes:
// apps/tool_main.hpp (0 ok, 1 runtime error with one line "dsgeval: error: ...", 2 usage error with
// the usage printed); --version prints the version; counts and --threads are checked by
// apps/tool_cli.hpp.
//
//   dsgeval MODEL --sample N [--config CONFIG] [--data PATH] [--prime TEXT] [--temperature X] [--seed S]
// generates N characters from a character-level model (a TEST net fed by a TEXT Data layer, such as
// configs/char_lstm.prototxt) and prints them on stdout after the --prime text (when given). See
// sample_text() below.
#include "apps/fast_blas.hpp"
#include "apps/tool_cli.hpp"
#include "apps/tool_main.hpp"
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "apps/dsgeval_lib.hpp"
#include "datasets/data_paths.hpp"
#include "datasets/text.hpp"
#include "runtime/batch_source.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/log.hpp"
#include "runtime/model_file.hpp"
#include "runtime/net.hpp"
#include "runtime/parallel.hpp"

namespace fs = std::filesystem;
using namespace dsg;

namespace {

struct Options {
  std::string model, data_dir, json, csv;
  int threads = 0;
  int64_t batches = 0;
  bool sensitivity = false;
  std::string granularity = "element";
  std::vector<double> levels{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98};
  double max_loss = 0.5;
  int64_t sram_kib = 128;
  // --sample
  int64_t sample = 0;
  std::string config, prime;
  bool prime_given = false;
  double temperature = 1.0;
  uint64_t seed = 0;
  std::string device = "cpu";
};

// --device: cpu, cuda[:N], or host-device-code (a test aid: the layers' device code on the host).
Context device_context(const std::string& device) {
  Context ctx;
  ctx.phase = TEST;
  if (device == "host-device-code") {
    ctx.device_code_on_host = true;
    return ctx;
  }
  ctx.device = parse_device(device);
  if (ctx.device.type == DeviceType::CUDA) {
    std::string reason;
    if (cuda_device_count(&reason) == 0) throw Error("--device " + device + ": " + reason, "use --device cpu");
  }
  return ctx;
}

// Fails early (before a long sensitivity run) when an output file's directory is missing.
void check_output(const std::string& path, const char* option) {
  fs::path dir = fs::path(path).parent_path();
  if (!path.empty() && !dir.empty() && !fs::is_directory(dir))
    throw Error(std::string(option) + ": cannot write '" + path + "': directory '" + dir.string() + "' does not exist");
}

std::string byte_name(uint8_t b) {
  return b >= 0x20 && b < 0x7f ? strfmt("'%c' (byte %d)", char(b), int(b)) : strfmt("byte %d", int(b));
}

// --sample: character generation. The net is the TEST net of --config (else the one stored in the
// model) with its TEXT Data layer replaced by an Input layer of the same tops, shaped [T, 1] (one
// stream); the vocabulary is rebuilt from that layer's source. The LSTM keeps no state between
// forward calls, so every step runs the net on the last T characters, left-padded with symbol 0
// when fewer, with cont 0 at the first real character (the state is reset there, so the padding
// has no influence), and draws the next character from softmax(scores / temperature) at the last
// position, with std::mt19937_64(seed). Returns the N generated characters.
std::string sample_text(const Options& opt) {
  if (!(opt.temperature > 0) || !std::isfinite(opt.temperature))
    throw Error(strfmt("--temperature must be positive, got %g", opt.temperature));
  ModelFile model = compress::looks_like_dsgz(opt.model) ? compress::decode_model(compress::read_dsgz_file(opt.model))
                                                          : read_model_file(opt.model);
  NetParameter param;
  std::string origin;
  if (!opt.config.empty()) {
    LoadedConfig c = load_solver_config(opt.config);
    param = c.solver.net_param();
    resolve_data_sources(param, c.config_dir, opt.data_dir);
    origin = "config '" + opt.config + "'";
  } else {
    if (!model.has_net() || model.net().layer_size() == 0)
      throw Error("'" + opt.model + "' holds no network definition", "pass the training config with --config");
    param = model.net();
    resolve_data_sources(param, ".", opt.data_dir);
    origin = "the net stored in '" + opt.model + "'";
  }

  NetState test;
  test.set_phase(TEST);
  LayerParameter* text = nullptr;
  for (auto& layer : *param.mutable_layer()) {
    if (!layer_included(layer, test) || !dynamic_cast<const BatchSource*>(create_layer(layer).get())) continue;
    if (layer.data_param().backend() != DataParameter::TEXT)
      throw Error(origin + ": the TEST Data layer '" + layer.name() + "' does not read TEXT data",
                  "--sample needs a character-level model such as configs/char_lstm.prototxt");
    text = &layer;
    break;
  }
  if (!text)
    throw Error(origin + " has no TEXT Data layer in its TEST phase",
                "--sample needs a character-level model such as configs/char_lstm.prototxt");
  const int T = int(text->data_param().sequence_length());
  if (T <= 0) throw Error(origin + ": data_param.sequence_length of layer '" + text->name() + "' must be positive");
  const TextCorpus corpus = read_text_corpus(text->data_param().source());
  const int V = int(corpus.vocabulary.size());
  for (const auto& layer : param.layer()) {
    if (!layer_included(layer, test)) continue;
    const std::unique_ptr<Layer> l = create_layer(layer);
    if (l->input_symbols() > 0 && l->input_symbols() < V)
      throw Error(strfmt("%s: layer '%s' (%s) has input_dim %lld, but the text %s has %d distinct characters",
                         origin.c_str(), layer.name().c_str(), l->type(), (long long)l->input_symbols(),
                         corpus.description.c_str(), V),
                  "sample with the text the model was trained on");
  }

  const std::string data_top = text->top_size() > 0 ? text->top(0) : "";
  const std::string label_top = text->top_size() > 1 ? text->top(1) : "";
  const std::string cont_top = text->top_size() > 2 ? text->top(2) : "";
  if (data_top.empty()) throw Error(origin + ": the TEXT Data layer '" + text->name() + "' has no tops");
  text->clear_data_param();
  text->clear_transform_param();
  text->set_type("Input");
  BlobShape* shape = text->mutable_input_param()->add_shape();
  shape->add_dim(T);
  shape->add_dim(1);

  std::mt19937_64 init(0);  // initial values are overwritten by the stored weights
  Net net(param, TEST, init);
  try {
    net.params_from_proto(model);
  } catch (const Error& e) {
    throw Error("model '" + opt.model + "' does not match " + origin + ": " + e.what(), e.hint());
  }
  // The character scores: what the first layer judging scores against labels reads.
  std::string scores_name;
  for (const auto& l : net.layers()) {
    if (l->label_scoring() && l->param().bottom_size() > 0) {
      scores_name = l->param().bottom(0);
      break;
    }
  }
  if (scores_name.empty())
    throw Error(origin + ": no SoftmaxWithLoss or Accuracy layer to take the character scores from");

  std::vector<int> history;
  const std::string prime = opt.prime_given ? opt.prime : "\n";
  if (prime.empty()) throw Error("--prime must not be empty");
  for (char ch : prime) {
    const int sym = corpus.symbol[uint8_t(ch)];
    if (sym < 0)
      throw Error("--prime: " + byte_name(uint8_t(ch)) + " does not occur in the text " + corpus.description,
                  "use characters of the training text");
    history.push_back(sym);
  }

  Tensor& data = net.blob(data_top);
  Tensor* label = label_top.empty() ? nullptr : &net.blob(label_top);
  Tensor* cont = cont_top.empty() ? nullptr : &net.blob(cont_top);
  const Tensor& scores = net.blob(scores_name);
  std::mt19937_64 rng(opt.seed);
  Context ctx = device_context(opt.device);
  check_device_support(net, ctx);
  ctx.seed = opt.seed;
  std::string out;
  std::vector<double> p(static_cast<size_t>(V), 0.0);
  for (int64_t n = 0; n < opt.sample; ++n) {
    const int m = int(std::min<size_t>(history.size(), size_t(T))), start = T - m;
    float* x = data.mutable_data();
    for (int t = 0; t < T; ++t) x[t] = t < start ? 0.0f : float(history[history.size() - size_t(T - t)]);
    if (label) std::fill(label->mutable_data(), label->mutable_data() + label->count(), 0.0f);
    if (cont) {
      float* c = cont->mutable_data();
      for (int t = 0; t < T; ++t) c[t] = t == 0 || t == start ? 0.0f : 1.0f;
    }
    net.forward(ctx);
    if (scores.count() != int64_t(T) * V || scores.shape(scores.num_axes() - 1) != V)
      throw Error(strfmt("model '%s': the scores '%s' have shape %s, expected [%d, 1, %d] (sequence_length, one "
                         "stream, the %d characters of the text %s)",
                         opt.model.c_str(), scores_name.c_str(), scores.shape_string().c_str(), T, V, V,
                         corpus.description.c_str()),
                  "sample with the text the model was trained on");
    const float* z = scores.data() + int64_t(T - 1) * V;
    const float zmax = *std::max_element(z, z + V);
    double sum = 0;
    for (int c = 0; c < V; ++c) sum += (p[size_t(c)] = std::exp(double(z[c] - zmax) / opt.temperature));
    double u = double(rng() >> 11) * 0x1.0p-53 * sum;
    int next = V - 1;
    for (int c = 0; c < V; ++c) {
      if (u < p[size_t(c)]) {
        next = c;
        break;
      }
      u -= p[size_t(c)];
    }
    history.push_back(next);
    out.push_back(char(corpus.vocabulary[size_t(next)]));
  }
  return out;
}

int run(Options opt) {
  set_log_quiet(true);
  if (opt.sample > 0) {
    set_num_threads(opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency())));
    const std::string text = sample_text(opt);
    if (opt.prime_given) std::fwrite(opt.prime.data(), 1, opt.prime.size(), stdout);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return 0;
  }  // data-layer descriptions are repeated in the report header
  for (double l : opt.levels)
    if (!(l >= 0 && l < 1)) throw Error(strfmt("--levels: %g is not a sparsity in [0, 1)", l));
  std::sort(opt.levels.begin(), opt.levels.end());
  opt.levels.erase(std::unique(opt.levels.begin(), opt.levels.end()), opt.levels.end());
  if (!(opt.max_loss >= 0)) throw Error(strfmt("--max-loss must be >= 0 percentage points, got %g", opt.max_loss));
  if (opt.sensitivity) {
    fs::path dir = fs::path(opt.model).parent_path();
    if (opt.csv.empty()) opt.csv = (dir / "sensitivity.csv").string();
  }
  const bool json_stdout = opt.json == "-";  // the JSON alone on stdout
  if (!json_stdout) check_output(opt.json, "--json");
  check_output(opt.csv, "--csv");
  set_num_threads(opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency())));

  const Context ctx = device_context(opt.device);
  eval::Evaluator ev(opt.model, opt.data_dir);
  ev.set_context(ctx);
  if (ctx.runs_device_code()) {
    // Every mode the evaluation runs in must have device code: refuse before the first batch.
    std::vector<std::pair<std::string, LayerMode>> planned;
    if (ev.is_compressed())
      for (const auto& b : ev.dsgz().blobs)
        if (b.index == 0 && b.kind != compress::BlobKind::RAW) planned.emplace_back(b.layer, LayerMode::kWeightOperator);
    check_device_support(ev.net(), ctx, planned);
  }
  eval::EvalResult r = ev.evaluate(opt.batches);
  if (opt.batches > r.batches)
    std::fprintf(stderr, "dsgeval: --batches %lld exceeds the test set; evaluated all %lld batches\n",
                 (long long)opt.batches, (long long)r.batches);
  eval::EvalResult compressed;
  eval::CompressedSection extra;
  if (ev.is_compressed()) {
    compressed = ev.evaluate_compressed(opt.batches);
    extra.compressed = &compressed;
  }
  const auto layers = ev.layer_stats();
  std::vector<compress::LayerCost> cost;
  try {
    cost = ev.cost(opt.sram_kib * 1024);
    extra.cost = &cost;
  } catch (const Error& e) {  // a .dsgmodel that dsgcompress would refuse: report without costs
    std::fprintf(stderr, "dsgeval: warning: no cost section: %s\n", e.what());
  }
  extra.sram_bytes = opt.sram_kib * 1024;
  if (!json_stdout) std::fputs(eval::markdown_report(opt.model, r, layers, extra).c_str(), stdout);
  std::fflush(stdout);

  eval::SensitivityResult sens;
  if (opt.sensitivity) {
    const auto g = opt.granularity == "filter" ? eval::Granularity::Filter : eval::Granularity::Element;
    sens = ev.sensitivity(g, opt.levels, opt.max_loss, opt.batches, [](const eval::SensitivityProgress& p) {
      std::fprintf(stderr, "dsgeval: sensitivity layer %d/%d %s, sparsity %g: top-1 %.4f\n", p.layer_index,
                   p.layer_count, p.layer->c_str(), p.level, p.accuracy);
    });
    write_file_atomically(opt.csv, eval::sensitivity_csv(sens));
    std::string out = strfmt("\n## Sensitivity (%s granularity, top-1 accuracy; dense %.6f)\n\n| layer |",
                             eval::granularity_name(g), sens.base_accuracy);
    for (double l : sens.levels) out += strfmt(" %g |", l);
    out += "\n|---|";
    for (size_t j = 0; j < sens.levels.size(); ++j) out += "---|";
    out += "\n";
    for (size_t i = 0; i < sens.layers.size(); ++i) {
      out += "| " + sens.layers[i] + " |";
      for (double a : sens.accuracy[i]) out += strfmt(" %.4f |", a);
      out += "\n";
    }
    out += "\nCSV: " + opt.csv + "\nPlot: python3 scripts/plot.py sensitivity " + opt.csv + " -o sensitivity.png\n";
    out += strfmt("\n## Suggested sparsity (largest tested level with a top-1 drop <= %g points)\n\n```prototxt\n",
                  opt.max_loss);
    for (const auto& line : eval::suggestion_lines(sens)) out += line + "\n";
    out += "```\n";
    if (!json_stdout) std::fputs(out.c_str(), stdout);
  }
  if (!opt.json.empty()) {
    const std::string json = eval::json_report(opt.model, r, layers, opt.sensitivity ? &sens : nullptr, extra);
    if (json_stdout) {
      std::fwrite(json.data(), 1, json.size(), stdout);
      if (json.empty() || json.back() != '\n') std::fputc('\n', stdout);
      std::fflush(stdout);
    } else {
      write_file_atomically(opt.json, json);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dsg::apps::select_fast_blas_kernels(argv);
  CLI::App app{"dsgeval: evaluate a .dsgmodel or .dsgz on its test set; per-layer sparsity, bytes, MACs and energy; "
               "pruning sensitivity"};
  Options opt;
  app.add_option("model", opt.model, "model file (.dsgmodel snapshot or .dsgz compressed model)")->required();
  app.add_option("--sram-kib", opt.sram_kib, "cost model: on-chip SRAM per layer's weights, KiB (default 128)")
      ->check(dsg::apps::positive());
  app.add_option("--data", opt.data_dir, "directory holding the data files named in the model's net");
  auto* json = app.add_option("--json", opt.json, "also write the report as JSON to FILE (-: the JSON alone on stdout)");
  app.add_option("--threads", opt.threads, "CPU threads (default: all cores)")->check(dsg::apps::thread_count());
  app.add_option("--device", opt.device,
                 "cpu or cuda[:N]; host-device-code (a test aid) runs the device code on the host");
  auto* batches = app.add_option("--batches", opt.batches,
                                 "evaluate only the first N test batches (default: the whole test set)")
                      ->check(dsg::apps::positive());
  auto* sens = app.add_flag("--sensitivity", opt.sensitivity, "prune each layer alone at each level and evaluate");
  app.add_option("--granularity", opt.granularity, "sensitivity pruning unit: element or filter")
      ->check(CLI::IsMember({"element", "filter"}))
      ->needs(sens);
  app.add_option("--levels", opt.levels, "sparsities to test (default 0.1,...,0.9,0.95,0.98)")->delimiter(',')->needs(sens);
  app.add_option("--csv", opt.csv, "sensitivity CSV (default: sensitivity.csv next to the model)")->needs(sens);
  app.add_option("--max-loss", opt.max_loss, "accepted top-1 drop in percentage points for suggestions (default 0.5)")
      ->needs(sens);
  auto* sample = app.add_option("--sample", opt.sample,
                                "generate N characters from a character-level model (TEXT data) and print them")
                     ->check(dsg::apps::positive())
                     ->excludes(sens)
                     ->excludes(json)
                     ->excludes(batches);
  app.add_option("--config", opt.config, "with --sample: the solver config whose TEST net and TEXT source to use "
                                         "(default: the net stored in the model)")
      ->needs(sample);
  app.add_option("--prime", opt.prime, "with --sample: text to start from, printed first (default: a newline, not printed)")
      ->needs(sample);
  app.add_option("--temperature", opt.temperature, "with --sample: softmax temperature (default 1; lower is more conservative)")
      ->needs(sample);
  app.add_option("--seed", opt.seed, "with --sample: random seed (default 0)")->needs(sample);
  if (auto status = dsg::apps::parse_command_line(app, "dsgeval", argc, argv)) return *status;
  opt.prime_given = app.count("--prime") > 0;
  if (opt.threads > 0) dsg::apps::warn_thread_count("dsgeval", opt.threads);
  return dsg::apps::run_reporting_errors("dsgeval", [&] { return run(opt); });
}
