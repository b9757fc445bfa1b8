// JSON log lines: four fields in order, the message escaped (base/json_escape.h, tested in
// tests/base/json_escape_test.cc).
#include "server/log_format.h"

#include <gtest/gtest.h>

#include <string>

namespace classifier {
namespace {

TEST(LogFormatTest, LineHasTheFourFieldsInOrder) {
  EXPECT_EQ(FormatJsonLogLine("2026-01-02T03:04:05.000006Z", "info", "classifier-server",
                              "listening on \"x\""),
            "{\"time\":\"2026-01-02T03:04:05.000006Z\",\"level\":\"info\",\"logger\":"
            "\"classifier-server\",\"message\":\"listening on \\\"x\\\"\"}");
}

TEST(LogFormatTest, UnknownFormatIsRefused) {
  EXPECT_EQ(ConfigureLogging("yaml").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ConfigureLogging("text").ok());
}

}  // namespace
}  // namespace classifier
