#include "web/request_fields.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace classifier {
namespace {

using google::protobuf::FieldDescriptor;

absl::Status Unparsable(const std::string& what, const std::string& expected,
                        const std::string& text) {
  // The text is quoted up to a sane length: it is the caller's, and may be anything.
  constexpr size_t kQuoted = 64;
  return absl::InvalidArgumentError(absl::StrCat(what, " must be ", expected, ", got \"",
                                                 text.substr(0, kQuoted),
                                                 text.size() > kQuoted ? "...\"" : "\""));
}

}  // namespace

absl::Status SetFieldFromText(google::protobuf::Message* request, const std::string& name,
                              const std::string& text, const std::string& what) {
  const google::protobuf::Descriptor& descriptor = *request->GetDescriptor();
  const FieldDescriptor* field = descriptor.FindFieldByName(name);
  if (field == nullptr) {
    for (int i = 0; i < descriptor.field_count() && field == nullptr; ++i) {
      if (descriptor.field(i)->json_name() == name) field = descriptor.field(i);
    }
  }
  if (field == nullptr) {
    std::vector<std::string> names;
    for (int i = 0; i < descriptor.field_count(); ++i) names.push_back(descriptor.field(i)->name());
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", descriptor.name(),
                                                   " has no field \"", name.substr(0, 64),
                                                   "\"; it has: ", absl::StrJoin(names, ", ")));
  }
  const google::protobuf::Reflection& reflection = *request->GetReflection();
  if (field->is_repeated()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", field->name(), " is a list; send it in a JSON body"));
  }
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": ", field->name(), " is bytes; send it in a JSON body"));
      }
      reflection.SetString(request, field, text);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t value;
      if (!absl::SimpleAtoi(text, &value)) return Unparsable(what, "a 32-bit integer", text);
      reflection.SetInt32(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t value;
      if (!absl::SimpleAtoi(text, &value)) return Unparsable(what, "an integer", text);
      reflection.SetInt64(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t value;
      if (!absl::SimpleAtoi(text, &value)) {
        return Unparsable(what, "a non-negative 32-bit integer", text);
      }
      reflection.SetUInt32(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t value;
      if (!absl::SimpleAtoi(text, &value)) {
        return Unparsable(what, "a non-negative integer", text);
      }
      reflection.SetUInt64(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double value;
      if (!absl::SimpleAtod(text, &value)) return Unparsable(what, "a number", text);
      reflection.SetDouble(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float value;
      if (!absl::SimpleAtof(text, &value)) return Unparsable(what, "a number", text);
      reflection.SetFloat(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool value;
      if (!absl::SimpleAtob(text, &value)) return Unparsable(what, "true or false", text);
      reflection.SetBool(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* value =
          field->enum_type()->FindValueByName(text);
      int number;
      if (value == nullptr && absl::SimpleAtoi(text, &number)) {
        value = field->enum_type()->FindValueByNumber(number);
      }
      if (value == nullptr) {
        std::vector<std::string> names;
        for (int i = 0; i < field->enum_type()->value_count(); ++i) {
          names.push_back(field->enum_type()->value(i)->name());
        }
        return Unparsable(what, absl::StrCat("one of ", absl::StrJoin(names, ", ")), text);
      }
      reflection.SetEnum(request, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (field->message_type()->full_name() != "google.protobuf.Timestamp") {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": ", field->name(), " is a message; send it in a JSON body"));
      }
      std::string quoted = "\"";
      for (const char c : text) {
        if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
          return Unparsable(what, "an RFC 3339 time (2026-12-06T10:00:00Z)", text);
        }
        quoted += c;
      }
      quoted += '"';
      if (!google::protobuf::util::JsonStringToMessage(quoted,
                                                       reflection.MutableMessage(request, field))
               .ok()) {
        return Unparsable(what, "an RFC 3339 time (2026-12-06T10:00:00Z)", text);
      }
      return absl::OkStatus();
    }
  }
  return absl::InternalError(absl::StrCat(what, ": unhandled field type of ", field->name()));
}

}  // namespace classifier
