#include "web/assets.h"

#include <iterator>

namespace classifier {
namespace {

// Generated from web/assets/ at build time: {path, content type, body} rows.
constexpr WebAsset kAssets[] = {
#include "web_assets.inc"
};

}  // namespace

const WebAsset* FindWebAsset(std::string_view path) {
  for (const WebAsset& asset : kAssets) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace classifier
