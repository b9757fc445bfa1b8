#include "base/image.h"

// clang-format off
#include <cstdio>  // Before jpeglib.h, which uses FILE and size_t without including them.
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>

#include <algorithm>
#include <array>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace classifier {
namespace {

// Refuse pictures whose decoded size alone would be a denial of service (a 40-byte PNG can
// claim to be 2^31 x 2^31). 50 megapixels is bigger than any phone photo.
constexpr int64_t kMaxPixels = int64_t{50} * 1000 * 1000;
// A JPEG needs a few bits for every 8x8 block it covers, even a blank one (photos take far
// more): one that claims more pixels than this per byte of the file is forged, and decoding
// it would take a second for nothing (a 370-byte file claiming 11520 x 4096 pixels). Small
// pictures pass whatever their size.
constexpr int64_t kMaxJpegPixelsPerByte = 10000;
constexpr int64_t kJpegPixelsAlwaysAllowed = int64_t{1} << 20;

// Luminance weights (ITU-R BT.601), the same libjpeg uses for its own RGB -> grey.
constexpr float kRedWeight = 0.299f;
constexpr float kGreenWeight = 0.587f;
constexpr float kBlueWeight = 0.114f;

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

bool IsPng(std::string_view bytes) {
  return bytes.substr(0, kPngSignature.size()) == kPngSignature;
}

bool IsJpeg(std::string_view bytes) {
  return bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
         static_cast<unsigned char>(bytes[1]) == 0xD8 &&
         static_cast<unsigned char>(bytes[2]) == 0xFF;
}

std::string FirstBytesHex(std::string_view bytes) {
  std::string out;
  const size_t n = std::min<size_t>(bytes.size(), 8);
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppendFormat(&out, "%s%02x", i == 0 ? "" : " ", static_cast<unsigned char>(bytes[i]));
  }
  return out;
}

absl::Status CheckDimensions(const char* kind, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("corrupt ", kind, ": empty image (", width, "x", height, ")"));
  }
  if (width * height > kMaxPixels) {
    return absl::InvalidArgumentError(absl::StrCat(kind, " image too large: ", width, "x", height,
                                                   " pixels (at most ", kMaxPixels, " pixels)"));
  }
  return absl::OkStatus();
}

// Grey level in [0, 1] of an 8-bit colour pixel with straight (not premultiplied) alpha,
// composited on white.
float CompositeOnWhite(float grey255, float alpha255) {
  const float alpha = alpha255 / kPixelScale;
  return (grey255 / kPixelScale) * alpha + (1.0f - alpha);
}

// ---------------------------------------------------------------------------------------------
// PNG, through libpng's simplified API (it handles every bit depth, palette, tRNS and gamma).

// Frees a png_image's internal state however the function that owns it returns.
struct PngImageFree {
  void operator()(png_image* image) const { png_image_free(image); }
};

absl::StatusOr<GreyImage> DecodePng(std::string_view encoded) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  std::unique_ptr<png_image, PngImageFree> cleanup(&image);

  if (!png_image_begin_read_from_memory(&image, encoded.data(), encoded.size())) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt PNG: ", image.message));
  }
  if (absl::Status status = CheckDimensions("PNG", image.width, image.height); !status.ok()) {
    return status;
  }
  // A 16-bit file without gamma information is sRGB-encoded like an 8-bit one (the libpng
  // default would treat it as linear and brighten it).
  image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
  const bool colour = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
  image.format = colour ? PNG_FORMAT_RGBA : PNG_FORMAT_GA;
  const int channels = colour ? 4 : 2;

  std::vector<png_byte> buffer(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, /*background=*/nullptr, buffer.data(),
                             /*row_stride=*/0, /*colormap=*/nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt PNG: ", image.message));
  }

  GreyImage out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.pixels.resize(static_cast<size_t>(out.width) * out.height);
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    const png_byte* p = &buffer[i * channels];
    float grey;
    float alpha;
    if (colour) {
      grey = kRedWeight * p[0] + kGreenWeight * p[1] + kBlueWeight * p[2];
      alpha = p[3];
    } else {
      grey = p[0];
      alpha = p[1];
    }
    out.pixels[i] = std::clamp(CompositeOnWhite(grey, alpha), 0.0f, 1.0f);
  }
  return out;
}

absl::StatusOr<std::string> EncodePngGreyImpl(const std::vector<uint8_t>& pixels, int width,
                                              int height) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_GRAY;
  std::unique_ptr<png_image, PngImageFree> cleanup(&image);

  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&image, /*memory=*/nullptr, &size, /*convert_to_8bit=*/0,
                                 pixels.data(), /*row_stride=*/0, /*colormap=*/nullptr)) {
    return absl::InternalError(absl::StrCat("PNG encoder: ", image.message));
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&image, out.data(), &size, /*convert_to_8bit=*/0, pixels.data(),
                                 /*row_stride=*/0, /*colormap=*/nullptr)) {
    return absl::InternalError(absl::StrCat("PNG encoder: ", image.message));
  }
  out.resize(size);
  return out;
}

// ---------------------------------------------------------------------------------------------
// JPEG, through libjpeg(-turbo). Its default error handler calls exit(); ours longjmps back
// to the caller with the message. The functions that call setjmp keep only trivially
// destructible objects in their frames, so that a longjmp skips no destructor.

struct JpegErrorManager {
  jpeg_error_mgr pub;  // First member: libjpeg hands us a pointer to it.
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void JpegErrorExit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings go nowhere, except those that say the compressed data is broken: libjpeg would pad a
// truncated file with grey, or fill every block after a bad code or a stray marker with zeros,
// and call it a success. A broken upload is an error, and refusing it at once also keeps a few
// hundred bytes claiming 240 x 64272 pixels from costing seconds of decoding nothing (the
// fuzzer's timeout-5e95564a...). Extraneous bytes before a marker stay a warning: real cameras
// write them.
void JpegEmitMessage(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;
  switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
      JpegErrorExit(cinfo);
    default:
      return;
  }
}

void InstallJpegErrorHandler(j_common_ptr cinfo, JpegErrorManager* err) {
  cinfo->err = jpeg_std_error(&err->pub);
  err->pub.error_exit = JpegErrorExit;
  err->pub.emit_message = JpegEmitMessage;
  err->message[0] = '\0';
}

struct JpegDecoded {
  int width = 0;
  int height = 0;
  int components = 0;          // 1 = grey, 4 = CMYK.
  bool inverted_cmyk = false;  // Adobe's CMYK JPEGs store the channels inverted.
  std::vector<unsigned char> samples;
  std::string error;  // Set when it returns false.
};

bool DecodeJpegInto(std::string_view encoded, JpegDecoded* out) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  InstallJpegErrorHandler(reinterpret_cast<j_common_ptr>(&cinfo), &err);
  if (setjmp(err.jump)) {
    out->error = absl::StrCat("corrupt JPEG: ", err.message);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(encoded.data()),
               static_cast<unsigned long>(encoded.size()));
  jpeg_read_header(&cinfo, /*require_image=*/TRUE);
  // Checked by the caller, once no longjmp can skip the destructors of a status.
  out->width = static_cast<int>(cinfo.image_width);
  out->height = static_cast<int>(cinfo.image_height);
  if (cinfo.arith_code) {
    // Decoders of arithmetic-coded data cannot tell damage from data: a few hundred forged
    // bytes decode for seconds (the image fuzzer's). No camera or browser writes it.
    out->error = "unsupported JPEG: arithmetic coding (save it with Huffman coding, as cameras do)";
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  const int64_t pixels = static_cast<int64_t>(out->width) * out->height;
  if (pixels > kMaxPixels) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (pixels > std::max(kJpegPixelsAlwaysAllowed,
                        kMaxJpegPixelsPerByte * static_cast<int64_t>(encoded.size()))) {
    out->error = absl::StrCat("corrupt JPEG: ", out->width, "x", out->height, " pixels in ",
                              encoded.size(), " bytes (more than ", kMaxJpegPixelsPerByte,
                              " pixels per byte: no real picture is that sparse)");
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    cinfo.out_color_space = JCS_CMYK;  // libjpeg cannot turn CMYK into grey itself.
    out->inverted_cmyk = cinfo.saw_Adobe_marker;
  } else {
    cinfo.out_color_space = JCS_GRAYSCALE;  // Y of YCbCr is BT.601 luminance.
  }
  jpeg_start_decompress(&cinfo);
  out->width = static_cast<int>(cinfo.output_width);
  out->height = static_cast<int>(cinfo.output_height);
  out->components = cinfo.output_components;
  const size_t stride = static_cast<size_t>(out->width) * out->components;
  out->samples.resize(stride * out->height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = &out->samples[stride * cinfo.output_scanline];
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return true;
}

absl::StatusOr<GreyImage> DecodeJpeg(std::string_view encoded) {
  JpegDecoded decoded;
  if (!DecodeJpegInto(encoded, &decoded)) {
    if (decoded.error.empty()) return CheckDimensions("JPEG", decoded.width, decoded.height);
    return absl::InvalidArgumentError(decoded.error);
  }
  GreyImage out;
  out.width = decoded.width;
  out.height = decoded.height;
  out.pixels.resize(static_cast<size_t>(out.width) * out.height);
  if (decoded.components == 1) {
    for (size_t i = 0; i < out.pixels.size(); ++i) out.pixels[i] = PixelToUnit(decoded.samples[i]);
    return out;
  }
  if (decoded.components != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported JPEG: ", decoded.components, " colour components"));
  }
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    const unsigned char* p = &decoded.samples[i * 4];
    std::array<float, 4> cmyk;
    for (int c = 0; c < 4; ++c) {
      cmyk[c] = PixelToUnit(static_cast<uint8_t>(decoded.inverted_cmyk ? 255 - p[c] : p[c]));
    }
    const float k = 1.0f - cmyk[3];
    const float r = (1.0f - cmyk[0]) * k;
    const float g = (1.0f - cmyk[1]) * k;
    const float b = (1.0f - cmyk[2]) * k;
    out.pixels[i] = kRedWeight * r + kGreenWeight * g + kBlueWeight * b;
  }
  return out;
}

struct JpegEncoded {
  unsigned char* data = nullptr;  // malloc'd by jpeg_mem_dest; the caller frees it.
  unsigned long size = 0;
  std::string error;
};

bool EncodeJpegInto(const std::vector<uint8_t>& pixels, int width, int height, int quality,
                    JpegEncoded* out) {
  jpeg_compress_struct cinfo;
  JpegErrorManager err;
  InstallJpegErrorHandler(reinterpret_cast<j_common_ptr>(&cinfo), &err);
  if (setjmp(err.jump)) {
    out->error = absl::StrCat("JPEG encoder: ", err.message);
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &out->data, &out->size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, /*force_baseline=*/TRUE);
  jpeg_start_compress(&cinfo, /*write_all_tables=*/TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    // libjpeg's API is not const-correct; it only reads the row.
    JSAMPROW row = const_cast<JSAMPROW>(&pixels[static_cast<size_t>(width) * cinfo.next_scanline]);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

absl::Status CheckEncoderInput(const std::vector<uint8_t>& pixels, int width, int height) {
  if (width <= 0 || height <= 0 || width > 65500 || height > 65500) {
    return absl::InvalidArgumentError(
        absl::StrCat("image size ", width, "x", height, " out of range 1..65500"));
  }
  const size_t expected = static_cast<size_t>(width) * static_cast<size_t>(height);
  if (pixels.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", expected, " pixels for ", width,
                                                   "x", height, ", got ", pixels.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GreyImage> DecodeImage(std::string_view encoded) {
  if (IsPng(encoded)) return DecodePng(encoded);
  if (IsJpeg(encoded)) return DecodeJpeg(encoded);
  if (encoded.empty()) return absl::InvalidArgumentError("empty image: no bytes");
  return absl::InvalidArgumentError(absl::StrCat("not a PNG or JPEG image (first bytes ",
                                                 FirstBytesHex(encoded), ", ", encoded.size(),
                                                 " bytes)"));
}

absl::StatusOr<std::string> EncodePngGrey(const std::vector<uint8_t>& pixels, int width,
                                          int height) {
  if (absl::Status status = CheckEncoderInput(pixels, width, height); !status.ok()) {
    return status;
  }
  return EncodePngGreyImpl(pixels, width, height);
}

absl::StatusOr<std::string> EncodeJpegGrey(const std::vector<uint8_t>& pixels, int width,
                                           int height, int quality) {
  if (absl::Status status = CheckEncoderInput(pixels, width, height); !status.ok()) {
    return status;
  }
  if (quality < 1 || quality > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("JPEG quality ", quality, " out of range 1..100"));
  }
  JpegEncoded encoded;
  const bool ok = EncodeJpegInto(pixels, width, height, quality, &encoded);
  std::unique_ptr<unsigned char, decltype(&std::free)> owned(encoded.data, &std::free);
  if (!ok) return absl::InternalError(encoded.error);
  return std::string(reinterpret_cast<const char*>(encoded.data), encoded.size);
}

}  // namespace classifier
