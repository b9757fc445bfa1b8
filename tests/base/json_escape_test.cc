// Text into JSON strings: whatever bytes a message holds (a client's job id, a file name), the
// result is valid JSON that decodes back to the same text, with invalid UTF-8 replaced by U+FFFD.
#include "base/json_escape.h"

#include <gtest/gtest.h>

#include <string>

namespace classifier {
namespace {

std::string Escaped(const std::string& text) {
  std::string out;
  AppendJsonEscaped(text, &out);
  return out;
}

TEST(JsonEscapeTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Escaped("plain text"), "plain text");
  EXPECT_EQ(Escaped("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(Escaped("line\nnext\r\ttab"), "line\\nnext\\r\\ttab");
  EXPECT_EQ(Escaped(std::string("nul\0bell\x07 del\x7f", 14)), "nul\\u0000bell\\u0007 del\\u007f");
}

TEST(JsonEscapeTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(Escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(Escaped("bad \xff end"), "bad \\ufffd end");
  EXPECT_EQ(Escaped("cut \xc3"), "cut \\ufffd");
  EXPECT_EQ(Escaped("overlong \xc0\xaf"), "overlong \\ufffd\\ufffd");
  EXPECT_EQ(Escaped("surrogate \xed\xa0\x80"), "surrogate \\ufffd\\ufffd\\ufffd");
}

TEST(JsonEscapeTest, QuotedAddsTheQuotes) {
  EXPECT_EQ(JsonQuoted(""), "\"\"");
  EXPECT_EQ(JsonQuoted("job \"7\"\n"), "\"job \\\"7\\\"\\n\"");
}

}  // namespace
}  // namespace classifier
