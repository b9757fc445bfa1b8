#include "server/status_util.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace classifier {

::grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return ::grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kMaxStatusMessageBytes) {
    size_t cut = kMaxStatusMessageBytes;
    // Back to the first byte of a character (UTF-8 continuation bytes are 10xxxxxx).
    while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
    const size_t dropped = message.size() - cut;
    message.resize(cut);
    absl::StrAppend(&message, "... (", dropped, " more bytes)");
  }
  return ::grpc::Status(static_cast<::grpc::StatusCode>(status.code()), std::move(message));
}

}  // namespace classifier
