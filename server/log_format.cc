#include "server/log_format.h"

#include <grpc/support/log.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/json_escape.h"
#include "spdlog/formatter.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

constexpr char kServerLogger[] = "classifier-server";
constexpr char kGrpcLogger[] = "grpc";

// spdlog formatter writing FormatJsonLogLine + newline.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds).count();
    const std::time_t time = static_cast<std::time_t>(seconds.count());
    std::tm utc{};
    gmtime_r(&time, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    const std::string time_utc = absl::StrFormat("%s.%06dZ", stamp, micros);
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    const std::string line =
        FormatJsonLogLine(time_utc, absl::string_view(level.data(), level.size()),
                          absl::string_view(msg.logger_name.data(), msg.logger_name.size()),
                          absl::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// gRPC's log hook: its messages through the same JSON lines. A plain function, as gRPC's C API
// requires; it only forwards.
void ForwardGrpcLog(gpr_log_func_args* args) {
  std::shared_ptr<spdlog::logger> logger = spdlog::get(kGrpcLogger);
  if (logger == nullptr) return;
  spdlog::level::level_enum level = spdlog::level::info;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = spdlog::level::err;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = spdlog::level::debug;
  logger->log(level, "{}:{}: {}", args->file, args->line, args->message);
}

}  // namespace

std::string FormatJsonLogLine(absl::string_view time_utc, absl::string_view level,
                              absl::string_view logger, absl::string_view message) {
  std::string line = "{\"time\":\"";
  AppendJsonEscaped(time_utc, &line);
  line.append("\",\"level\":\"");
  AppendJsonEscaped(level, &line);
  line.append("\",\"logger\":\"");
  AppendJsonEscaped(logger, &line);
  line.append("\",\"message\":\"");
  AppendJsonEscaped(message, &line);
  line.append("\"}");
  return line;
}

absl::Status ConfigureLogging(const std::string& format) {
  if (format == "text") return absl::OkStatus();
  if (format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--log_format must be text or json, got \"", format, "\""));
  }
  // Named loggers on the default logger's sink (stdout): the name is the record's "logger".
  std::shared_ptr<spdlog::logger> server = spdlog::default_logger()->clone(kServerLogger);
  server->set_formatter(std::make_unique<JsonFormatter>());
  std::shared_ptr<spdlog::logger> grpc = server->clone(kGrpcLogger);
  spdlog::set_default_logger(server);
  spdlog::register_logger(grpc);
  gpr_set_log_function(ForwardGrpcLog);
  return absl::OkStatus();
}

}  // namespace classifier
