// A weights file is untrusted bytes: the state-dict reader (model/pickle_reader.cc) interprets
// pickles itself and applies only the globals a state dict needs, so a pickle made to run code
// on load (Python's own attack payloads: __reduce__ returning os.system, eval, exec or
// subprocess.Popen, and the INST / OBJ opcodes that call a class) is refused, naming what it
// asked for, and nothing runs: the file each payload would create never appears.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/network.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

constexpr char kPython[] = "/usr/bin/python3";

// Writes each payload as a torch.save zip (archive/data.pkl beside archive/version), with
// Python's own pickle module, so the bytes are what an attacker's Python writes.
constexpr char kPayloads[] = R"py(
import os, pickle, subprocess, sys, zipfile
out, marker = sys.argv[1], sys.argv[2]
class System:
    def __reduce__(self): return (os.system, ('touch ' + marker,))
class Eval:
    def __reduce__(self): return (eval, ("__import__('os').system('touch %s')" % marker,))
class Exec:
    def __reduce__(self): return (exec, ("open(%r, 'w').close()" % marker,))
class Popen:
    def __reduce__(self): return (subprocess.Popen, (['touch', marker],))
payloads = {
    'os_system_protocol2': pickle.dumps({'conv1.weight': System()}, protocol=2),
    'eval_protocol4': pickle.dumps({'conv1.weight': Eval()}, protocol=4),
    'exec_protocol3': pickle.dumps(Exec(), protocol=3),
    'popen_protocol0': pickle.dumps(Popen(), protocol=0),
    'system_as_a_value': pickle.dumps({'conv1.weight': os.system}, protocol=2),
    'inst_opcode': b"(S'touch " + marker.encode() + b"'\nios\nsystem\n.",
    'obj_opcode': b"(cos\nsystem\nS'touch " + marker.encode() + b"'\no.",
}
for name, data in payloads.items():
    with zipfile.ZipFile(os.path.join(out, name + '.pth'), 'w') as z:
        z.writestr('archive/data.pkl', data)
        z.writestr('archive/version', '3\n')
)py";

struct Payload {
  std::string name;
  std::string named_in_error;  // What the refusal must name.
};

TEST(PickleSafetyTest, PicklesThatWouldRunCodeAreRefusedByNameAndRunNothing) {
  if (access(kPython, X_OK) != 0) GTEST_SKIP() << kPython << " is not available";
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("pickle_safety_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path marker = dir / "code-ran";
  std::ofstream((dir / "payloads.py").string()) << kPayloads;
  const std::string command = std::string(kPython) + " " + (dir / "payloads.py").string() + " " +
                              dir.string() + " " + marker.string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  ASSERT_FALSE(std::filesystem::exists(marker)) << "writing the payloads ran one";

  const std::vector<Payload> payloads = {
      {"os_system_protocol2", "posix.system"},
      {"eval_protocol4", "builtins.eval"},
      {"exec_protocol3", "builtins.exec"},
      // Protocol 0 memoizes with the text PUT opcode, which no state dict uses: refused there.
      {"popen_protocol0", "opcode"},
      {"system_as_a_value", "conv1.weight"},
      {"inst_opcode", "opcode"},
      {"obj_opcode", "opcode"},
  };
  for (const Payload& payload : payloads) {
    SCOPED_TRACE(payload.name);
    std::ifstream file((dir / (payload.name + ".pth")).string(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(file)),
                            std::istreambuf_iterator<char>());
    ASSERT_FALSE(bytes.empty());
    // Both ways a file is read: ImportWeights infers the architecture first, then loads.
    const absl::StatusOr<Architecture> inferred = InferArchitecture(bytes);
    EXPECT_FALSE(inferred.ok());
    EXPECT_THAT(std::string(inferred.status().message()), HasSubstr(payload.named_in_error));
    const absl::StatusOr<std::unique_ptr<TrainedModel>> loaded =
        TrainedModel::FromStateDictBytes(bytes, Architecture(), "cpu");
    EXPECT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(payload.named_in_error));
  }
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a payload ran";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace classifier
