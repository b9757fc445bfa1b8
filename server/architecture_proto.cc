#include "server/architecture_proto.h"

namespace classifier {

Architecture ArchitectureFromRequest(const v1::Architecture& proto) {
  Architecture architecture;  // Its defaults: the tutorial's network.
  if (!proto.conv_channels().empty()) {
    architecture.conv_channels.assign(proto.conv_channels().begin(), proto.conv_channels().end());
  }
  if (proto.kernel_size() != 0) architecture.kernel_size = proto.kernel_size();
  architecture.hidden_units = proto.hidden_units();
  architecture.dropout = proto.dropout();
  return architecture;
}

v1::Architecture ToArchitectureProto(const Architecture& architecture) {
  v1::Architecture proto;
  for (int channels : architecture.conv_channels) proto.add_conv_channels(channels);
  proto.set_kernel_size(architecture.kernel_size);
  proto.set_hidden_units(architecture.hidden_units);
  proto.set_dropout(architecture.dropout);
  proto.set_num_classes(architecture.num_classes);
  return proto;
}

Architecture ArchitectureFromStored(const v1::Architecture& proto, bool present) {
  Architecture architecture;
  if (!present) return architecture;
  architecture.conv_channels.assign(proto.conv_channels().begin(), proto.conv_channels().end());
  architecture.kernel_size = proto.kernel_size();
  architecture.hidden_units = proto.hidden_units();
  architecture.dropout = proto.dropout();
  architecture.num_classes = proto.num_classes();
  return architecture;
}

}  // namespace classifier
