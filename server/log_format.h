// The server's log output: spdlog's default text lines, or one JSON object per line for log
// shippers (Loki, Fluent Bit, Elasticsearch) that would otherwise have to parse free text.
#ifndef CLASSIFIER_SERVER_LOG_FORMAT_H_
#define CLASSIFIER_SERVER_LOG_FORMAT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace classifier {

// Formats one log record as {"time":"2026-01-02T03:04:05.678901Z","level":"info",
// "logger":"classifier-server","message":"..."} (UTC, microseconds), without the newline.
std::string FormatJsonLogLine(absl::string_view time_utc, absl::string_view level,
                              absl::string_view logger, absl::string_view message);

// Sets the process's log output: "text" (spdlog's default pattern) or "json". In json mode,
// gRPC's own messages go through the same logger (as logger "grpc") so that no line of the
// output is anything but JSON. Call once, early in main(), before threads log.
// INVALID_ARGUMENT for any other format.
absl::Status ConfigureLogging(const std::string& format);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_LOG_FORMAT_H_
