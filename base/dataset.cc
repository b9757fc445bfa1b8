#include "base/dataset.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace classifier {
namespace {

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the number of
// dimensions.
constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;
constexpr uint8_t kIdxUnsignedByte = 0x08;
// The IDX format allows up to 255 dimensions; anything above a handful is not an image file.
constexpr int kMaxIdxDimensions = 8;
// Sanity bounds: no real image set comes near these, and they keep every product in range.
constexpr int64_t kMaxImageSide = 4096;
constexpr int64_t kMaxBodyBytes = int64_t{1} << 34;  // 16 GiB.
// Refuse to inflate more than this: a gzip bomb must not take the server's memory.
constexpr int64_t kMaxInflatedBytes = kMaxBodyBytes + 1024;
constexpr size_t kGzipHeaderBytes = 10;
// Deflate never inflates one input byte to more than 1032 bytes (zlib's FAQ): the most that a
// gzip file's bytes can stand for, whatever its trailer claims.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr unsigned char kGzipMagic0 = 0x1f;
constexpr unsigned char kGzipMagic1 = 0x8b;

bool IsGzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == kGzipMagic0 &&
         static_cast<unsigned char>(bytes[1]) == kGzipMagic1;
}

// NOT_FOUND when `path` does not exist, another code matching errno otherwise.
absl::Status OpenError(const std::string& path, int error_number) {
  if (error_number == ENOENT || error_number == ENOTDIR) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  return absl::ErrnoToStatus(error_number, absl::StrCat(path, ": cannot open"));
}

// Fails unless `path` names a regular file (a directory opens fine with ifstream and gzopen).
absl::Status CheckRegularFile(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return OpenError(path, errno);
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadPlainFile(const std::string& path) {
  if (absl::Status status = CheckRegularFile(path); !status.ok()) return status;
  std::ifstream in(path, std::ios::binary);
  if (!in) return OpenError(path, errno);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return absl::DataLossError(absl::StrCat(path, ": cannot determine its size"));
  if (size > kMaxInflatedBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", size, " bytes is larger than the limit of ", kMaxInflatedBytes));
  }
  in.seekg(0, std::ios::beg);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (!in.read(bytes.data(), size)) {
    return absl::DataLossError(
        absl::StrCat(path, ": read failed after ", in.gcount(), " of ", size, " bytes"));
  }
  return bytes;
}

// Inflates every gzip member of `compressed` (gzip allows several, concatenated).
absl::StatusOr<std::string> Gunzip(const std::string& compressed, const std::string& path) {
  std::string out;
  // The last four bytes hold the inflated size modulo 2^32: a good first guess, but only a
  // guess. A damaged or hostile trailer must not make a 30-byte file reserve 256 MiB (the
  // fuzzer's timeout-29b86ac3...), so it is capped by what the bytes can inflate to.
  if (compressed.size() >= kGzipHeaderBytes + 8) {
    uint32_t isize = 0;
    for (int i = 3; i >= 0; --i) {
      isize = (isize << 8) | static_cast<unsigned char>(compressed[compressed.size() - 4 + i]);
    }
    out.reserve(std::min<uint64_t>(
        {isize, uint64_t{compressed.size()} * kMaxDeflateRatio, uint64_t{256} << 20}));
  }

  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  // 16 + MAX_WBITS: expect a gzip wrapper (header and CRC-32 trailer), not a raw zlib stream.
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot initialise zlib"));
  }
  std::unique_ptr<z_stream, int (*)(z_stream*)> cleanup(&stream, inflateEnd);

  size_t consumed = 0;
  constexpr size_t kChunk = size_t{1} << 20;
  while (true) {
    const size_t remaining = compressed.size() - consumed;
    const uInt in_size = static_cast<uInt>(std::min<size_t>(remaining, kChunk));
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + consumed));
    stream.avail_in = in_size;
    int ret = Z_OK;
    do {
      const size_t old_size = out.size();
      if (static_cast<int64_t>(old_size) >= kMaxInflatedBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": inflates to more than the limit of ", kMaxInflatedBytes, " bytes"));
      }
      out.resize(old_size + kChunk);
      stream.next_out = reinterpret_cast<Bytef*>(out.data() + old_size);
      stream.avail_out = static_cast<uInt>(kChunk);
      ret = inflate(&stream, Z_NO_FLUSH);
      out.resize(old_size + kChunk - stream.avail_out);
      if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR ||
          ret == Z_STREAM_ERROR) {
        return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data (",
                                                stream.msg ? stream.msg : zError(ret), ")"));
      }
    } while (stream.avail_out == 0 && ret != Z_STREAM_END);
    consumed += in_size - stream.avail_in;

    if (ret == Z_STREAM_END) {
      // A member ended: either the file ends too, or another gzip member follows.
      if (consumed == compressed.size()) break;
      const std::string rest_magic = compressed.substr(consumed, 2);
      if (!IsGzip(rest_magic)) {
        return absl::DataLossError(absl::StrCat(path, ": ", compressed.size() - consumed,
                                                " unexpected bytes after the gzip stream"));
      }
      inflateReset(&stream);
      continue;
    }
    if (consumed == compressed.size()) {
      return absl::DataLossError(absl::StrCat(path, ": truncated gzip stream (ends after ",
                                              compressed.size(), " compressed bytes)"));
    }
    if (ret == Z_BUF_ERROR && stream.avail_in == in_size) {
      // No progress with input and output space available: cannot happen for valid data.
      return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data"));
    }
  }
  out.shrink_to_fit();
  return out;
}

uint32_t ReadBigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void AppendBigEndian32(uint32_t value, std::string& out) {
  out.push_back(static_cast<char>((value >> 24) & 0xff));
  out.push_back(static_cast<char>((value >> 16) & 0xff));
  out.push_back(static_cast<char>((value >> 8) & 0xff));
  out.push_back(static_cast<char>(value & 0xff));
}

std::string MagicString(uint32_t magic) {
  return absl::StrCat("0x", absl::Hex(magic, absl::kZeroPad8));
}

// Parses the magic number and the dimensions from the first bytes of an IDX file. `size` may
// be shorter than the header (a truncated file): that is DATA_LOSS.
absl::StatusOr<IdxHeader> ParseIdxHeader(const unsigned char* data, size_t size,
                                         const std::string& path, size_t* header_bytes) {
  if (size < 4) {
    return absl::DataLossError(absl::StrCat(
        path, ": truncated: ", size, " bytes, too short for an IDX header (4-byte magic number)"));
  }
  const uint32_t magic = ReadBigEndian32(data);
  if (data[0] != 0 || data[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not an IDX file: magic number ", MagicString(magic),
        " does not start with two zero bytes (expected 0x00000803 for images, 0x00000801 for "
        "labels)"));
  }
  IdxHeader header;
  header.element_type = data[2];
  const int dimensions = data[3];
  if (dimensions < 1 || dimensions > kMaxIdxDimensions) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": IDX magic number ", MagicString(magic), " declares ", dimensions,
                     " dimensions; expected 1 to ", kMaxIdxDimensions));
  }
  const size_t needed = 4 + 4 * static_cast<size_t>(dimensions);
  if (size < needed) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated: the IDX header declares ", dimensions, " dimensions (",
                     needed, " header bytes) but the file has only ", size, " bytes"));
  }
  for (int i = 0; i < dimensions; ++i) {
    header.dimensions.push_back(ReadBigEndian32(data + 4 + 4 * i));
  }
  if (header_bytes != nullptr) *header_bytes = needed;
  return header;
}

absl::Status CheckMagic(const IdxHeader& header, uint32_t expected, const std::string& what,
                        const std::string& path) {
  const uint32_t magic =
      (uint32_t{header.element_type} << 8) | static_cast<uint32_t>(header.dimensions.size());
  if (magic != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": wrong IDX magic number ", MagicString(magic), " for ", what,
                     "; expected ", MagicString(expected), " (unsigned bytes, ", expected & 0xff,
                     " dimension", (expected & 0xff) == 1 ? "" : "s", ")"));
  }
  return absl::OkStatus();
}

// Checks that the body after the header is exactly `expected` bytes long.
absl::Status CheckBodyLength(size_t actual, int64_t expected, const std::string& what,
                             const std::string& path) {
  if (static_cast<int64_t>(actual) < expected) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: the header promises ", what, " (",
                                            expected, " bytes after the header) but only ", actual,
                                            " bytes follow"));
  }
  if (static_cast<int64_t>(actual) > expected) {
    return absl::DataLossError(absl::StrCat(
        path, ": ", static_cast<int64_t>(actual) - expected, " unexpected bytes after ", what,
        " (the header promises ", expected, " bytes after the header, the file has ", actual, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFileMaybeGzip(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadPlainFile(path);
  if (!bytes.ok() || !IsGzip(*bytes)) return bytes;
  return Gunzip(*bytes, path);
}

absl::StatusOr<IdxHeader> ReadIdxHeader(const std::string& path) {
  if (absl::Status status = CheckRegularFile(path); !status.ok()) return status;
  // gzopen reads plain files transparently, so one path serves both.
  errno = 0;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    if (errno != 0) return OpenError(path, errno);
    return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot open (out of memory)"));
  }
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);

  // The magic number first: it says how many dimensions (and so header bytes) follow.
  unsigned char buffer[4 + 4 * kMaxIdxDimensions];
  auto read = [&](unsigned char* into, unsigned size) -> absl::StatusOr<size_t> {
    const int n = gzread(file, into, size);
    if (n < 0) {
      int code = 0;
      absl::string_view message = gzerror(file, &code);
      if (code == Z_ERRNO) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": read failed"));
      // zlib prefixes the message with the path; the status names it once.
      absl::ConsumePrefix(&message, absl::StrCat(path, ": "));
      return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data (", message, ")"));
    }
    return static_cast<size_t>(n);
  };
  absl::StatusOr<size_t> got = read(buffer, 4);
  if (!got.ok()) return got.status();
  size_t total = *got;
  if (total == 4 && buffer[0] == 0 && buffer[1] == 0 && buffer[3] >= 1 &&
      buffer[3] <= kMaxIdxDimensions) {
    got = read(buffer + 4, 4u * buffer[3]);
    if (!got.ok()) return got.status();
    total += *got;
  }
  return ParseIdxHeader(buffer, total, path, nullptr);
}

absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, int num_classes) {
  if (num_classes < 1 || num_classes > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes must be between 1 and 256 (labels are bytes), got ", num_classes,
                     " for ", labels_path));
  }

  // Images.
  absl::StatusOr<std::string> image_bytes = ReadFileMaybeGzip(images_path);
  if (!image_bytes.ok()) return image_bytes.status();
  const auto* image_data = reinterpret_cast<const unsigned char*>(image_bytes->data());
  size_t image_header_bytes = 0;
  absl::StatusOr<IdxHeader> image_header =
      ParseIdxHeader(image_data, image_bytes->size(), images_path, &image_header_bytes);
  if (!image_header.ok()) return image_header.status();
  if (absl::Status status = CheckMagic(*image_header, kIdxImagesMagic, "images", images_path);
      !status.ok()) {
    return status;
  }
  const int64_t count = image_header->dimensions[0];
  const int64_t rows = image_header->dimensions[1];
  const int64_t cols = image_header->dimensions[2];
  if (count < 1) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": holds no images"));
  }
  if (rows < 1 || rows > kMaxImageSide || cols < 1 || cols > kMaxImageSide) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": images of ", rows, "x", cols,
                                                   " pixels; each side must be 1 to ",
                                                   kMaxImageSide));
  }
  if (count > kMaxBodyBytes / (rows * cols)) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": ", count, " images of ", rows,
                                                   "x", cols, " exceed the limit of ",
                                                   kMaxBodyBytes, " bytes"));
  }
  const int64_t pixel_bytes = count * rows * cols;
  if (absl::Status status =
          CheckBodyLength(image_bytes->size() - image_header_bytes, pixel_bytes,
                          absl::StrCat(count, " images of ", rows, "x", cols), images_path);
      !status.ok()) {
    return status;
  }

  // Labels.
  absl::StatusOr<std::string> label_bytes = ReadFileMaybeGzip(labels_path);
  if (!label_bytes.ok()) return label_bytes.status();
  const auto* label_data = reinterpret_cast<const unsigned char*>(label_bytes->data());
  size_t label_header_bytes = 0;
  absl::StatusOr<IdxHeader> label_header =
      ParseIdxHeader(label_data, label_bytes->size(), labels_path, &label_header_bytes);
  if (!label_header.ok()) return label_header.status();
  if (absl::Status status = CheckMagic(*label_header, kIdxLabelsMagic, "labels", labels_path);
      !status.ok()) {
    return status;
  }
  const int64_t label_count = label_header->dimensions[0];
  if (absl::Status status = CheckBodyLength(label_bytes->size() - label_header_bytes, label_count,
                                            absl::StrCat(label_count, " labels"), labels_path);
      !status.ok()) {
    return status;
  }
  if (label_count != count) {
    return absl::InvalidArgumentError(absl::StrCat(labels_path, ": holds ", label_count,
                                                   " labels but ", images_path, " holds ", count,
                                                   " images"));
  }

  Dataset dataset;
  dataset.rows = rows;
  dataset.cols = cols;
  dataset.num_classes = num_classes;
  dataset.labels.assign(label_data + label_header_bytes,
                        label_data + label_header_bytes + label_count);
  for (int64_t i = 0; i < label_count; ++i) {
    if (dataset.labels[i] >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(labels_path, ": the label of image ", i,
                                                     " is ", int{dataset.labels[i]},
                                                     ", not below num_classes = ", num_classes));
    }
  }
  // Free the label file's copy before taking the image copy: keeps the peak lower.
  label_bytes->clear();
  dataset.pixels.assign(image_data + image_header_bytes,
                        image_data + image_header_bytes + pixel_bytes);
  return dataset;
}

std::string EncodeIdxImages(const std::vector<uint8_t>& pixels, int64_t count, int64_t rows,
                            int64_t cols) {
  std::string out;
  out.reserve(16 + pixels.size());
  AppendBigEndian32(kIdxImagesMagic, out);
  AppendBigEndian32(static_cast<uint32_t>(count), out);
  AppendBigEndian32(static_cast<uint32_t>(rows), out);
  AppendBigEndian32(static_cast<uint32_t>(cols), out);
  out.append(reinterpret_cast<const char*>(pixels.data()), pixels.size());
  return out;
}

std::string EncodeIdxLabels(const std::vector<uint8_t>& labels) {
  std::string out;
  out.reserve(8 + labels.size());
  AppendBigEndian32(kIdxLabelsMagic, out);
  AppendBigEndian32(static_cast<uint32_t>(labels.size()), out);
  out.append(reinterpret_cast<const char*>(labels.data()), labels.size());
  return out;
}

}  // namespace classifier
