// Text into JSON string literals by hand, where no JSON library is at hand (log lines, the web
// gateway's error bodies): one escaping rule for every such writer.
#ifndef CLASSIFIER_BASE_JSON_ESCAPE_H_
#define CLASSIFIER_BASE_JSON_ESCAPE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace classifier {

// Appends `text` to `out` as the body of a JSON string (no quotes): quotes, backslashes and
// control characters escaped, invalid UTF-8 bytes replaced by U+FFFD, so that the result is
// valid JSON whatever a client put in an id, a file name or an error message.
void AppendJsonEscaped(absl::string_view text, std::string* out);

// `text` as a JSON string literal, quotes included.
std::string JsonQuoted(absl::string_view text);

}  // namespace classifier

#endif  // CLASSIFIER_BASE_JSON_ESCAPE_H_
