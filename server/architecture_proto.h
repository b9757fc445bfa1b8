// The network's shape between protobuf (v1::Architecture) and model/ (Architecture).
#ifndef CLASSIFIER_SERVER_ARCHITECTURE_PROTO_H_
#define CLASSIFIER_SERVER_ARCHITECTURE_PROTO_H_

#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"
#include "model/network.h"

namespace classifier {

// A request's architecture with the defaults applied (empty conv_channels = [8, 16], kernel
// 0 = 3) for a dataset of `num_classes` classes. INVALID_ARGUMENT naming the field
// (architecture.conv_channels[2], ...) when the shape is impossible: see ValidateArchitecture.
absl::StatusOr<Architecture> ArchitectureFromRequest(const v1::Architecture& proto,
                                                     int num_classes);

// The stored form of a model's architecture (num_classes included), and back; an absent one
// (models registered before architectures were recorded) is the tutorial's CNN.
v1::Architecture ToArchitectureProto(const Architecture& architecture);
Architecture ArchitectureFromStored(const v1::Architecture& proto, bool present);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_ARCHITECTURE_PROTO_H_
