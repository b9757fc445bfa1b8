// The network's shape between protobuf (v1::Architecture) and model/ (Architecture).
#ifndef CLASSIFIER_SERVER_ARCHITECTURE_PROTO_H_
#define CLASSIFIER_SERVER_ARCHITECTURE_PROTO_H_

#include "classifier/v1/classifier.pb.h"
#include "model/network.h"

namespace classifier {

// A request's architecture: the tutorial's network where a field is absent or zero
// (conv_channels [8, 16], kernel_size 3). Its image size and classes are the data's, and its
// rules model/'s (ResolveTrainOptions); num_classes in the request is ignored.
Architecture ArchitectureFromRequest(const v1::Architecture& proto);

// The stored form of a model's architecture (num_classes included), and back; an absent one
// (models registered before architectures were recorded) is the tutorial's CNN.
v1::Architecture ToArchitectureProto(const Architecture& architecture);
Architecture ArchitectureFromStored(const v1::Architecture& proto, bool present);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_ARCHITECTURE_PROTO_H_
