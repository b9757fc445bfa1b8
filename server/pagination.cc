#include "server/pagination.h"

#include <string_view>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"

namespace classifier {
namespace {

// The token's layout (all integers big-endian):
//   version      1 byte   kTokenVersion
//   list         1 byte   ListKind
//   filter       8 bytes  the first bytes of SHA-256(filter)
//   issued       8 bytes  Unix seconds
//   rank         8 bytes  PageKey::rank
//   id           the rest up to the checksum
//   checksum     8 bytes  the first bytes of SHA-256(kChecksumDomain + everything above)
constexpr uint8_t kTokenVersion = 1;
constexpr size_t kFingerprintBytes = 8;
constexpr size_t kChecksumBytes = 8;
constexpr size_t kFixedBytes = 2 + kFingerprintBytes + 8 + 8;
// Ids and dataset names are far shorter; a longer text is refused before it is decoded.
constexpr size_t kMaxTokenChars = 512;
// Keeps a checksum of these bytes from ever matching one computed for another purpose.
constexpr absl::string_view kChecksumDomain = "classifier.v1 page token\n";

// The first `bytes` bytes of SHA-256(data).
std::string Sha256Prefix(absl::string_view data, size_t bytes) {
  Sha256 hash;
  hash.Update(std::string_view(data.data(), data.size()));
  return hash.Finish().substr(0, bytes);
}

std::string FilterFingerprint(absl::string_view filter) {
  return Sha256Prefix(filter, kFingerprintBytes);
}

std::string Checksum(absl::string_view body) {
  return Sha256Prefix(absl::StrCat(kChecksumDomain, body), kChecksumBytes);
}

void AppendInt64(int64_t value, std::string* out) {
  const auto bits = static_cast<uint64_t>(value);
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(bits >> shift));
}

int64_t ReadInt64(absl::string_view bytes) {
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(bytes[i]);
  return static_cast<int64_t>(bits);
}

absl::Status Malformed() {
  return absl::InvalidArgumentError(
      "page_token is not a token this server issued (garbled, truncated or altered); pass the "
      "next_page_token of the previous response unchanged, or none for the first page");
}

}  // namespace

absl::string_view ListName(ListKind list) {
  switch (list) {
    case ListKind::kJobs:
      return "ListJobs";
    case ListKind::kModels:
      return "ListModels";
    case ListKind::kDatasets:
      return "ListDatasets";
  }
  return "an unknown list";
}

bool ComesBefore(ListKind list, PageKeyView a, PageKeyView b) {
  if (list == ListKind::kDatasets) return std::tie(a.rank, a.id) < std::tie(b.rank, b.id);
  return std::tie(a.rank, a.id) > std::tie(b.rank, b.id);
}

absl::StatusOr<PageRequest> ReadPageRequest(ListKind list, int32_t page_size,
                                            absl::string_view page_token, absl::string_view filter,
                                            absl::Time now) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size must be between 0 and ", kMaxPageSize,
                                                   " (0 = the default, ", kDefaultPageSize,
                                                   "), got ", page_size));
  }
  PageRequest request;
  if (page_size > 0) request.size = page_size;
  if (!page_token.empty()) {
    absl::StatusOr<PageKey> after = DecodePageToken(page_token, list, filter, now);
    if (!after.ok()) return after.status();
    request.after = *std::move(after);
  }
  return request;
}

std::string EncodePageToken(ListKind list, absl::string_view filter, const PageKey& last,
                            absl::Time issued) {
  std::string body;
  body.push_back(static_cast<char>(kTokenVersion));
  body.push_back(static_cast<char>(list));
  body += FilterFingerprint(filter);
  AppendInt64(absl::ToUnixSeconds(issued), &body);
  AppendInt64(last.rank, &body);
  body += last.id;
  body += Checksum(body);
  return absl::WebSafeBase64Escape(body);
}

absl::StatusOr<PageKey> DecodePageToken(absl::string_view token, ListKind list,
                                        absl::string_view filter, absl::Time now) {
  std::string bytes;
  if (token.size() > kMaxTokenChars || !absl::WebSafeBase64Unescape(token, &bytes) ||
      bytes.size() < kFixedBytes + kChecksumBytes) {
    return Malformed();
  }
  const absl::string_view all(bytes);
  const absl::string_view body = all.substr(0, all.size() - kChecksumBytes);
  if (Checksum(body) != all.substr(body.size()) || static_cast<uint8_t>(body[0]) != kTokenVersion) {
    return Malformed();
  }
  const auto issued_for = static_cast<ListKind>(static_cast<uint8_t>(body[1]));
  if (issued_for != list) {
    return absl::InvalidArgumentError(absl::StrCat("page_token was issued by ",
                                                   ListName(issued_for), ", not ", ListName(list),
                                                   "; list again without a page_token"));
  }
  if (body.substr(2, kFingerprintBytes) != FilterFingerprint(filter)) {
    return absl::InvalidArgumentError(
        "page_token was issued for a different filter: send the same filter fields as the request "
        "that returned it (only page_size may change), or list again without a page_token");
  }
  const absl::Time issued = absl::FromUnixSeconds(ReadInt64(body.substr(2 + kFingerprintBytes)));
  if (now - issued > kPageTokenLifetime) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token expired (a token is valid for ", absl::FormatDuration(kPageTokenLifetime),
        " after it is issued); list again from the first page, without a page_token"));
  }
  PageKey key;
  key.rank = ReadInt64(body.substr(2 + kFingerprintBytes + 8));
  key.id = std::string(body.substr(kFixedBytes));
  return key;
}

}  // namespace classifier
