#include "client/args.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace classifier::cli {
namespace {

constexpr FlagSpec kJsonFlag = {"json", FlagType::kBool, "",
                                "print the server's answer as JSON (one object per line)"};
// train and watch: a broken event stream is opened again (client/train_commands.cc).
constexpr FlagSpec kReattachFlag = {
    "reattach_seconds", FlagType::kInt32, "S",
    "when the stream breaks (the server restarts, a replica behind a load balancer dies), watch "
    "the job again from the next event for up to S seconds (default 60; 0: never)"};
// The list commands' paging (client/paging.h).
constexpr FlagSpec kLimitFlag = {"limit", FlagType::kInt64, "N",
                                 "show the first N (default: one page of the server's)"};
constexpr FlagSpec kAllFlag = {"all", FlagType::kBool, "", "show every one, page after page"};

// Accepted before or after the command.
const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* const flags = new std::vector<FlagSpec>{
      {"server", FlagType::kString, "HOST:PORT",
       "server address (default $CLASSIFIER_SERVER, else 127.0.0.1:50051)"},
      {"timeout", FlagType::kDouble, "SECONDS",
       "deadline of a unary call (default 60; evaluate 600; health 5) or of import (none)"},
      {"tls", FlagType::kBool, "", "connect with TLS, trusting the system's CA roots"},
      {"tls_ca", FlagType::kString, "FILE",
       "connect with TLS, trusting the PEM CA bundle FILE (the server's CA)"},
      {"tls_cert", FlagType::kString, "FILE",
       "PEM client certificate for mutual TLS (with --tls_key)"},
      {"tls_key", FlagType::kString, "FILE", "PEM private key of --tls_cert"},
      {"tls_server_name", FlagType::kString, "NAME",
       "name to check the server's certificate against (default: the host of --server)"},
      {"token_file", FlagType::kString, "FILE",
       "send the bearer token in FILE with every call (default $CLASSIFIER_TOKEN, the token)"},
      {"help", FlagType::kBool, "", "print this help (or a command's, after the command)"},
  };
  return *flags;
}

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags, absl::string_view name) {
  auto it = std::find_if(flags.begin(), flags.end(),
                         [name](const FlagSpec& f) { return f.name == name; });
  return it == flags.end() ? nullptr : &*it;
}

// Checks `value` against the flag's type; booleans are normalised to "true" / "false".
absl::StatusOr<std::string> CheckValue(const FlagSpec& flag, std::string value) {
  auto invalid = [&](absl::string_view expected) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid value '%s' for --%s: expected %s", value, flag.name, expected));
  };
  switch (flag.type) {
    case FlagType::kBool: {
      if (value == "true" || value == "1") return std::string("true");
      if (value == "false" || value == "0") return std::string("false");
      return invalid("true or false");
    }
    case FlagType::kString:
      return value;
    case FlagType::kInt32: {
      int32_t v;
      if (!absl::SimpleAtoi(value, &v)) return invalid("an integer (32-bit)");
      return value;
    }
    case FlagType::kInt64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) return invalid("an integer");
      return value;
    }
    case FlagType::kUint64: {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) return invalid("a non-negative integer");
      return value;
    }
    case FlagType::kDouble: {
      double v;
      if (!absl::SimpleAtod(value, &v) || !std::isfinite(v)) return invalid("a number");
      return value;
    }
  }
  return value;
}

// Flags renamed to the proto's field names: the old spellings still work, for one release, with
// a deprecation line.
const char* RenamedFlag(absl::string_view name) {
  static constexpr std::pair<const char*, const char*> kRenamed[] = {
      {"lr_step", "lr_step_size"},      {"early_stopping", "early_stopping_patience"},
      {"hflip", "horizontal_flip"},     {"vflip", "vertical_flip"},
      {"rotation", "rotation_degrees"}, {"progress_reports", "progress_reports_per_epoch"},
      {"deploy", "deploy_when_done"},
  };
  for (const auto& [old_name, new_name] : kRenamed) {
    if (name == old_name) return new_name;
  }
  return nullptr;
}

std::string FlagUsageLines(const std::vector<FlagSpec>& flags) {
  std::string out;
  for (const FlagSpec& flag : flags) {
    std::string left = absl::StrCat("--", flag.name);
    if (!flag.value_name.empty()) absl::StrAppend(&left, " ", flag.value_name);
    absl::StrAppendFormat(&out, "  %-24s %s\n", left, flag.help);
  }
  return out;
}

}  // namespace

const std::vector<CommandSpec>& Commands() {
  static const auto* const commands = new std::vector<CommandSpec>{
      {"health",
       "",
       0,
       0,
       "check the server's health; prints SERVING and exits 0, else exits 1",
       {{"service", FlagType::kString, "NAME", "service to check (default \"\": the server)"}}},
      {"train",
       "",
       0,
       0,
       "start a training job and follow its progress until it ends",
       {{"dataset", FlagType::kString, "NAME",
         "mnist, fashion-mnist or a registered name "
         "(default mnist)"},
        {"epochs", FlagType::kInt32, "N", "epochs (default: the server's, 10)"},
        {"batch_size", FlagType::kInt32, "N", "images per batch (default: the server's, 60)"},
        {"learning_rate", FlagType::kDouble, "RATE",
         "learning rate (default: the server's, "
         "0.001)"},
        {"seed", FlagType::kUint64, "N", "shuffling and initialisation seed (default 0)"},
        {"optimizer", FlagType::kString, "NAME", "adam, adamw or sgd (default adam)"},
        {"momentum", FlagType::kDouble, "M", "sgd's momentum, in [0, 1) (default 0)"},
        {"weight_decay", FlagType::kDouble, "W",
         "weight decay in [0, 1] (L2 for adam and sgd, decoupled for adamw; default 0)"},
        {"label_smoothing", FlagType::kDouble, "E",
         "cross-entropy label smoothing in [0, 1), as PyTorch's (default 0: none)"},
        {"world_size", FlagType::kInt32, "N",
         "data-parallel ranks (processes) to train on; each takes 1/N of every batch "
         "(default 1: one process)"},
        {"lr_schedule", FlagType::kString, "NAME",
         "none, step or cosine: the learning rate from epoch to epoch (default none)"},
        {"lr_step_size", FlagType::kInt32, "N", "step schedule: epochs per step (default 1)"},
        {"lr_gamma", FlagType::kDouble, "G", "step schedule: factor per step (default 0.1)"},
        {"rotation_degrees", FlagType::kDouble, "DEGREES",
         "augmentation: random rotation in [-DEGREES, DEGREES] (default 0)"},
        {"translation", FlagType::kDouble, "F",
         "augmentation: random shift up to F times the image's side (default 0)"},
        {"scale_min", FlagType::kDouble, "S", "augmentation: smallest random zoom (default 1)"},
        {"scale_max", FlagType::kDouble, "S", "augmentation: largest random zoom (default 1)"},
        {"horizontal_flip", FlagType::kBool, "",
         "augmentation: random left-right flips (refused for digits: a flipped 6 is a 9)"},
        {"vertical_flip", FlagType::kBool, "", "augmentation: random upside-down flips (same)"},
        {"progress_reports_per_epoch", FlagType::kInt32, "N",
         "progress reports within each epoch (default 0: only at epoch ends)"},
        {"deploy_when_done", FlagType::kBool, "",
         "deploy the model when the job succeeds (Predict and Evaluate then use it)"},
        {"validation_fraction", FlagType::kDouble, "F",
         "hold out this fraction of the training set for validation, in [0, 0.5] (default 0)"},
        {"keep_best", FlagType::kBool, "",
         "keep the weights of the epoch with the best validation accuracy"},
        {"early_stopping_patience", FlagType::kInt32, "N",
         "stop after N epochs without a better validation accuracy (default 0: never)"},
        {"conv_channels", FlagType::kString, "C1,C2,...",
         "output channels of each conv layer (default 8,16: the tutorial's)"},
        {"kernel_size", FlagType::kInt32, "K", "conv kernel side, odd (default 3)"},
        {"hidden_units", FlagType::kInt32, "N",
         "a hidden linear layer of N units before the classifier (default 0: none)"},
        {"dropout", FlagType::kDouble, "P",
         "dropout before the classifier while training, in [0, 0.9] (default 0)"},
        {"init_from_model", FlagType::kString, "ID",
         "fine-tune: start from this model's weights (same architecture)"},
        {"freeze_convolutions", FlagType::kBool, "",
         "with --init_from_model: train only the linear layers"},
        {"sweep_learning_rates", FlagType::kString, "R1,R2,...",
         "grid search: one trial per learning rate (x the other sweep lists)"},
        {"sweep_batch_sizes", FlagType::kString, "N1,N2,...", "grid search: batch sizes"},
        {"sweep_conv_channels", FlagType::kString, "C1,C2;C1,C2",
         "grid search: conv channel lists, separated by ';' (other architecture flags apply)"},
        {"sweep_augment", FlagType::kString, "off,on",
         "grid search: trials without and/or with the augmentation flags given"},
        {"detach", FlagType::kBool, "", "print the job id once queued and exit"},
        kReattachFlag,
        kJsonFlag}},
      {"watch",
       "JOB",
       1,
       1,
       "follow a job's events (replayed from the start, then live)",
       {{"from", FlagType::kInt64, "N", "first event sequence number to show (default 1)"},
        {"plot", FlagType::kString, "FILE",
         "when the job ends, write its loss and accuracy curves to FILE (SVG)"},
        kReattachFlag,
        kJsonFlag}},
      {"jobs",
       "",
       0,
       0,
       "list the jobs, newest first: one page of the server's, unless --limit or --all",
       {kLimitFlag,
        kAllFlag,
        {"state", FlagType::kString, "STATE",
         "only jobs in this state: queued, running, succeeded, failed, cancelled or interrupted"},
        {"dataset", FlagType::kString, "NAME", "only jobs training on this dataset"},
        {"created_after", FlagType::kString, "RFC3339",
         "only jobs created after this time, e.g. 2026-01-31T12:00:00Z"},
        kJsonFlag}},
      {"job", "JOB", 1, 1, "show one job", {kJsonFlag}},
      {"cancel", "JOB", 1, 1, "cancel a job (a running one stops at its next batch)", {kJsonFlag}},
      {"evaluate",
       "",
       0,
       0,
       "measure a model on a dataset split: accuracy, loss, per-class metrics, confusion",
       {{"model", FlagType::kString, "ID", "model (default: the deployed, else the newest)"},
        {"dataset", FlagType::kString, "NAME",
         "dataset (default: the one the model was trained on)"},
        {"split", FlagType::kString, "SPLIT", "test or train (default test)"},
        {"plot", FlagType::kString, "FILE", "also write the confusion matrix to FILE (SVG)"},
        kJsonFlag}},
      {"predict",
       "FILE...",
       1,
       -1,
       "classify PNG or JPEG files (any size, colour or grey)",
       {{"model", FlagType::kString, "ID", "model (default: the deployed, else the newest)"},
        {"top_k", FlagType::kInt32, "K", "also list the K most probable labels (default 1)"},
        kJsonFlag}},
      {"models",
       "",
       0,
       0,
       "list the models, newest first (* = deployed): one page of the server's, unless "
       "--limit or --all",
       {kLimitFlag,
        kAllFlag,
        {"dataset", FlagType::kString, "NAME", "only models of this dataset"},
        {"job_id", FlagType::kString, "ID", "only the model this job produced"},
        {"created_after", FlagType::kString, "RFC3339",
         "only models created after this time, e.g. 2026-01-31T12:00:00Z"},
        kJsonFlag}},
      {"workers",
       "",
       0,
       0,
       "list the classifier-workers registered with the server (their ranks run distributed jobs)",
       {kJsonFlag}},
      {"export",
       "",
       0,
       0,
       "download a model's weights (checked against the server's size and SHA-256)",
       {{"model", FlagType::kString, "ID", "model (default: the deployed, else the newest)"},
        {"out", FlagType::kString, "PATH",
         "file or existing directory to write (default: the server's file name, here)"},
        {"format", FlagType::kString, "FORMAT",
         "pytorch (a state_dict .pth, the default) or onnx (a .onnx model, opset 13)"}}},
      {"import",
       "FILE",
       1,
       1,
       "register a model from a PyTorch state_dict file (torch.save of model.state_dict())",
       {{"dataset", FlagType::kString, "NAME",
         "the dataset the weights were trained for (default: the server's, mnist)"},
        kJsonFlag}},
      {"deploy",
       "MODEL",
       1,
       1,
       "make a model the default of predict and evaluate (roll back: deploy an older one)",
       {kJsonFlag}},
      {"delete",
       "MODEL",
       1,
       1,
       "delete a model and its weights (not the deployed one)",
       {kJsonFlag}},
      {"datasets",
       "",
       0,
       0,
       "list the datasets: built-in and registered, their images, classes and image size",
       {kLimitFlag, kAllFlag, kJsonFlag}},
      {"register-dataset",
       "NAME PATH",
       2,
       2,
       "register a folder of the four IDX files (PATH relative to the server's data directory)",
       {kJsonFlag}},
      {"samples",
       "",
       0,
       0,
       "write a grid of random images of a dataset as a PNG; prints their labels in grid order",
       {{"dataset", FlagType::kString, "NAME", "dataset (default mnist)"},
        {"out", FlagType::kString, "FILE", "the PNG file to write (required)"},
        {"count", FlagType::kInt32, "N", "images, 1 to 256 (default 16)"},
        {"seed", FlagType::kUint64, "N", "which images: the same seed, the same ones (default 0)"},
        {"split", FlagType::kString, "SPLIT", "train or test (default train)"},
        {"columns", FlagType::kInt32, "N", "images per grid row (default: a square grid)"},
        {"scale", FlagType::kInt32, "K", "draw every pixel K x K, 1 to 16 (default 1)"}}},
  };
  return *commands;
}

const CommandSpec* FindCommand(absl::string_view name) {
  const std::vector<CommandSpec>& commands = Commands();
  auto it = std::find_if(commands.begin(), commands.end(),
                         [name](const CommandSpec& c) { return c.name == name; });
  return it == commands.end() ? nullptr : &*it;
}

bool Invocation::Has(absl::string_view name) const { return flags.find(name) != flags.end(); }

std::string Invocation::String(absl::string_view name, absl::string_view fallback) const {
  auto it = flags.find(name);
  return it == flags.end() ? std::string(fallback) : it->second;
}

bool Invocation::Bool(absl::string_view name) const { return String(name) == "true"; }

int32_t Invocation::Int32(absl::string_view name, int32_t fallback) const {
  int32_t v = fallback;
  if (auto it = flags.find(name); it != flags.end()) (void)absl::SimpleAtoi(it->second, &v);
  return v;
}

int64_t Invocation::Int64(absl::string_view name, int64_t fallback) const {
  int64_t v = fallback;
  if (auto it = flags.find(name); it != flags.end()) (void)absl::SimpleAtoi(it->second, &v);
  return v;
}

uint64_t Invocation::Uint64(absl::string_view name, uint64_t fallback) const {
  uint64_t v = fallback;
  if (auto it = flags.find(name); it != flags.end()) (void)absl::SimpleAtoi(it->second, &v);
  return v;
}

double Invocation::Double(absl::string_view name, double fallback) const {
  double v = fallback;
  if (auto it = flags.find(name); it != flags.end()) (void)absl::SimpleAtod(it->second, &v);
  return v;
}

absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& argv,
                                     absl::string_view server_from_environment) {
  Invocation inv;
  inv.server = server_from_environment.empty() ? std::string(kDefaultServer)
                                               : std::string(server_from_environment);
  const CommandSpec* command = nullptr;
  bool help_command = false;  // `classifier-cli help [COMMAND]`.
  bool flags_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& token = argv[i];
    if (!flags_done && token == "--") {
      flags_done = true;
      continue;
    }
    if (!flags_done && token == "-h") {
      inv.help = true;
      continue;
    }
    if (flags_done || token.size() < 2 || token[0] != '-') {
      if (command == nullptr && !help_command) {
        if (token == "help") {
          help_command = true;
          inv.help = true;
          continue;
        }
        command = FindCommand(token);
        if (command == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat("unknown command '", token, "'"));
        }
        inv.command = token;
      } else if (command == nullptr) {  // The COMMAND of `help COMMAND`.
        command = FindCommand(token);
        if (command == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat("unknown command '", token, "'"));
        }
        inv.command = token;
      } else {
        inv.args.push_back(token);
      }
      continue;
    }
    if (token.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("flags start with two dashes: '", token,
                                                     "' (use -- before an "
                                                     "argument that starts with -)"));
    }
    const size_t equals = token.find('=');
    std::string name =
        token.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    if (const char* renamed = RenamedFlag(name); renamed != nullptr) {
      inv.deprecations.push_back(absl::StrCat("--", name,
                                              " is deprecated and will be removed; use --", renamed,
                                              " (the TrainRequest field's name)"));
      name = renamed;
    }
    const FlagSpec* flag = FindFlag(GlobalFlags(), name);
    if (flag == nullptr && command != nullptr) flag = FindFlag(command->flags, name);
    if (flag == nullptr) {
      if (command == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown flag --", name, " before the command (command flags go after it)"));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " for '", command->name, "'"));
    }
    std::string value;
    if (equals != std::string::npos) {
      value = token.substr(equals + 1);
    } else if (flag->type == FlagType::kBool) {
      value = "true";
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name, " needs a value (", flag->value_name, ")"));
    }
    absl::StatusOr<std::string> checked = CheckValue(*flag, std::move(value));
    if (!checked.ok()) return checked.status();
    if (name == "server") {
      if (checked->empty()) return absl::InvalidArgumentError("--server must not be empty");
      inv.server = *checked;
    } else if (name == "timeout") {
      (void)absl::SimpleAtod(*checked, &inv.timeout_seconds);
      if (inv.timeout_seconds <= 0) {
        return absl::InvalidArgumentError("--timeout must be a number of seconds above 0");
      }
    } else if (name == "help") {
      inv.help = *checked == "true";
    } else {
      inv.flags[name] = *checked;
    }
  }
  if (inv.help) return inv;
  if (command == nullptr) return absl::InvalidArgumentError("no command given");
  const int count = static_cast<int>(inv.args.size());
  if (count < command->min_args || (command->max_args >= 0 && count > command->max_args)) {
    if (command->max_args == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", command->name, "' takes no arguments, got '", inv.args.front(), "'"));
    }
    return absl::InvalidArgumentError(absl::StrCat("'", command->name, "' takes ",
                                                   command->args_usage, ", got ", count,
                                                   count == 1 ? " argument" : " arguments"));
  }
  return inv;
}

std::string Usage() {
  std::string out =
      "usage: classifier-cli [--server HOST:PORT] [--timeout SECONDS] COMMAND [FLAGS] [ARGS]\n"
      "\n"
      "Trains, evaluates and queries a classifier server over gRPC.\n"
      "\n"
      "commands:\n";
  for (const CommandSpec& command : Commands()) {
    std::string left(command.name);
    if (!command.args_usage.empty()) absl::StrAppend(&left, " ", command.args_usage);
    absl::StrAppendFormat(&out, "  %-24s %s\n", left, command.summary);
  }
  absl::StrAppend(&out, "\nglobal flags:\n", FlagUsageLines(GlobalFlags()),
                  "\nRun 'classifier-cli COMMAND --help' for a command's flags.\n"
                  "Exit status: 0 ok, 1 server error, 2 usage error, 3 local file error,\n"
                  "4 the job failed, was cancelled or was interrupted.\n");
  return out;
}

std::string CommandUsage(const CommandSpec& command) {
  std::string out = absl::StrCat("usage: classifier-cli [GLOBAL FLAGS] ", command.name);
  if (!command.flags.empty()) absl::StrAppend(&out, " [FLAGS]");
  if (!command.args_usage.empty()) absl::StrAppend(&out, " ", command.args_usage);
  absl::StrAppend(&out, "\n\n", command.summary, "\n");
  if (!command.flags.empty()) absl::StrAppend(&out, "\nflags:\n", FlagUsageLines(command.flags));
  absl::StrAppend(&out, "\nglobal flags:\n", FlagUsageLines(GlobalFlags()));
  return out;
}

}  // namespace classifier::cli
