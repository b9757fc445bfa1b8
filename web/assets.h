// The dashboard's files (web/assets/), compiled into the binary by embed_assets.cmake, so the
// server serves them from memory: nothing to install beside it, nothing fetched from a CDN.
#ifndef CLASSIFIER_WEB_ASSETS_H_
#define CLASSIFIER_WEB_ASSETS_H_

#include <string_view>

namespace classifier {

struct WebAsset {
  // "/index.html"
  std::string_view path;
  std::string_view content_type;
  std::string_view body;
};

// The asset served at `path`, or null.
const WebAsset* FindWebAsset(std::string_view path);

}  // namespace classifier

#endif  // CLASSIFIER_WEB_ASSETS_H_
